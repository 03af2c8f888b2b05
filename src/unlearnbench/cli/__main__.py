"""``python -m unlearnbench.cli``: the command line where no ``unlearnbench`` script is installed."""
from . import console_main

if __name__ == "__main__":
    console_main()
