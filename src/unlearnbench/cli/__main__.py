"""``python -m unlearnbench.cli``: the command line where no ``unlearnbench`` script is installed."""
from . import main

if __name__ == "__main__":
    main()
