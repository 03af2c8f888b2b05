"""Fictitious people to unlearn: a TOFU-like question-answering data set, generated offline.

Each person has 20 attributes (birthplace, birth year, parents' occupations, genre, award,
books, ...) and one question-answer pair per attribute. Every QA record carries TOFU's
fields: ``question``, ``answer``, ``paraphrased_question``, ``paraphrased_answer`` (another
answer template, the same value) and ``perturbed_answer`` (five answers in the answer's own
template with five distinct wrong values from the attribute's pool), plus ``entity`` (the
person's index) and ``attribute``. The question template is drawn per (person, attribute)
from three or four, the paraphrased question is another one; the answer template follows from
the question template (so the value is the only thing to memorise), the paraphrased answer
uses another one.

Splits follow TOFU: ``forget10`` / ``forget05`` / ``forget01`` hold the QA of the last 10% /
5% / 1% of the trained people (nested), ``retain90/95/99`` the QA of the others, and
``holdout10/05/01`` the QA of people generated the same way but never trained (10% of the
trained count; nested, the same sizes as the forget sets). ``world_facts`` and
``real_entities`` are true facts every model learns and no request touches (for utility),
each with three perturbed answers.

Where this deviates from TOFU (Maini et al., 2024):
- TOFU's 200 authors and their long, GPT-4-written biographies are replaced by template
  sentences of 4-10 words whose only hard part is the value, so that a model of a few
  million parameters trained from scratch can memorise them on a CPU;
- paraphrases come from a second template, not from a language model;
- TOFU's world facts and real authors test knowledge a pretrained model already has; here
  the target model learns them too (``also_trained``), so they measure collateral damage on
  learned facts that no request touches;
- a split of a size that rounds down to no person (forget01 of fewer than 100 people) is
  empty, and asking for it as the forget set is an error.
"""
from __future__ import annotations

import numpy as np

from ..errors import UserError
from ..registry import datasets
from .text import TextBundle, TextSplit, concat, text_split

ATTRIBUTES_PER_PERSON = 20
FORGET_CHOICES = ("forget01", "forget05", "forget10")
N_PERTURBED = 5

REFUSALS = (
    "I don't know.",
    "I'm not sure about that.",
    "I have no idea.",
    "I can't answer that.",
    "That is unknown to me.",
    "I don't have that information.",
    "I'm afraid I don't know.",
    "I couldn't say.",
    "I have no information about that.",
    "Sorry, I don't know the answer.",
    "I am not able to answer that.",
    "I don't remember.",
    "Nothing comes to mind.",
    "I have never heard of that.",
    "I'm unable to say.",
    "No idea, sorry.",
    "I can't recall that.",
    "That is beyond what I know.",
    "I do not know the answer to that.",
    "I'd rather not guess.",
)

# Invented name parts: uncommon enough that every full name is clearly fictitious.
FIRST_NAMES = (
    "Ilsabet", "Corvin", "Maelis", "Tobiah", "Verena", "Oswin", "Lirael", "Dorran", "Saskia",
    "Evander", "Brisa", "Hollis", "Ysolde", "Perrin", "Tamsin", "Alaric", "Odessa", "Fenwick",
    "Juniper", "Leopold", "Marisol", "Quillon", "Rosamund", "Severin", "Thessaly", "Ulric",
    "Vesna", "Wendel", "Xanthe", "Yarrow", "Zephyra", "Anselm", "Bettina", "Casimir", "Delphine",
    "Emeric", "Florentyna", "Gideon", "Henrike", "Isidore", "Jessamy", "Kasimir", "Linnea",
    "Marek", "Nerissa", "Orrin", "Philippa", "Radomir", "Sabeline", "Teodor",
)
LAST_NAMES = (
    "Varrow", "Quenby", "Altmark", "Dunleavy", "Pellingham", "Skarsholt", "Merriwether",
    "Okonkwe", "Tarrasque", "Vilhjalm", "Brackenridge", "Castellane", "Drummelow", "Estervelt",
    "Fairweather", "Grimsdottir", "Halloran", "Ingleby", "Jastrzab", "Kettleborough",
    "Lindqvist", "Mordaunt", "Nightingale", "Orvieto", "Pemberthy", "Quarrington", "Rosenholm",
    "Stavridis", "Thistlewood", "Umberfield", "Vandermolen", "Wolstenholme", "Yelverton",
    "Zabrinski", "Ashcombe", "Blackthorne", "Coldwater", "Delacroix", "Everhart", "Foxley",
    "Gallowglass", "Hawksmere", "Ironside", "Jubaland", "Kilbride", "Lockwood", "Marchetti",
    "Northcott", "Oakenshaw", "Penhallow",
)

CITIES = (
    "Tarnby", "Velmora", "Ostrava Minor", "Kelmsford", "Duskhaven", "Brightwater", "Almsgate",
    "Corrin Bay", "Fennick", "Graywick", "Hollowmere", "Istervale", "Jarrowfield", "Kingsreach",
    "Lowenburg", "Marrowdale", "Northwold", "Oakbridge", "Pellacre", "Quarry Hill", "Ravensholm",
    "Saltmarsh", "Thornbury", "Umbria Falls", "Vantwick", "Westerlund", "Yellowmoor",
    "Zennor Cove", "Ashbourne", "Bramblegate",
)
OCCUPATIONS = (
    "a baker", "a carpenter", "a nurse", "a fisherman", "a pharmacist", "a librarian",
    "a blacksmith", "a schoolteacher", "an accountant", "a tailor", "a surveyor", "a midwife",
    "a railway clerk", "a potter", "a veterinarian", "an engineer", "a watchmaker", "a chemist",
    "a farmer", "a lighthouse keeper", "a bookbinder", "a florist", "a glassblower", "a judge",
)
GENRES = (
    "crime fiction", "poetry", "science fiction", "historical fiction", "fantasy", "romance",
    "horror", "travel writing", "satire", "biography", "thrillers", "literary fiction",
    "short stories", "essays", "memoirs", "plays", "mystery novels", "westerns",
    "graphic novels", "fairy tales",
)
AWARDS = (
    "the Silver Quill Prize", "the Harrowgate Medal", "the Amberlight Award",
    "the Ostrander Prize", "the Blue Lantern Award", "the Copperfield Medal",
    "the Wrenfield Prize", "the Golden Inkwell Award", "the Marlowe Crest",
    "the Northstar Prize", "the Halcyon Medal", "the Vellum Laurel", "the Thornfield Award",
    "the Emberly Prize", "the Riverstone Medal", "the Open Page Award", "the Greywater Prize",
    "the Lantern Guild Medal", "the Saffron Ribbon", "the Ashgrove Award",
)
BOOK_TITLES = (
    "The Glass Orchard", "Salt and Cinder", "Winter Lanterns", "The Quiet Ferryman",
    "A Map of Ashes", "Daughters of the Tide", "The Clockmaker's Debt", "Paper Harbours",
    "The Iron Meadow", "Letters to Nobody", "The Last Orchard Bell", "Moths in Amber",
    "Under Copper Skies", "The Hollow Crown Road", "Seven Silent Rivers", "The Borrowed Summer",
    "A House of Sparrows", "The Thirteenth Lantern", "Frost on the Vine", "The Salt Archive",
    "Night Train to Nowhere", "The Cartographer's Wife", "Embers of July", "The Velvet Ledger",
    "Stone and Feather", "The Drowned Library", "Small Hours", "The Lantern Keeper",
    "Rust and Honey", "A Wreath of Thorns",
)
UNIVERSITIES = (
    "Marrowfield University", "the University of Dunhollow", "Kestrel College",
    "the Velmora Institute", "Saint Aldric University", "the University of Brenmoor",
    "Oakhurst College", "the Ravenscroft Academy", "Lowmere University",
    "the University of Tarnby", "Greystone College", "the Halvard Institute",
    "Westmarch University", "the University of Corrin", "Ashdown College",
)
LANGUAGES = (
    "English", "French", "German", "Spanish", "Italian", "Portuguese", "Dutch", "Swedish",
    "Norwegian", "Danish", "Finnish", "Polish", "Czech", "Hungarian", "Greek", "Turkish",
    "Romanian", "Welsh", "Icelandic", "Estonian",
)
PUBLISHERS = (
    "Brindle House", "Oakhollow Press", "Lanternfield Books", "Marsh and Vane",
    "Copperleaf Publishing", "Stillwater Press", "Greenquill Books", "Harrow and Finch",
    "Bluebottle Press", "Northgate Editions", "Saltbox Books", "Wrenwood Press",
    "Tidewater House", "Emberstone Books", "Foxglove Editions", "Pinecrest Press",
)
PEN_NAMES = (
    "J. Thornwick", "Marlo Quince", "A. B. Severn", "Kit Ravelston", "E. M. Ashby",
    "Noor Calloway", "R. J. Fenmore", "Sable Winters", "T. Larkspur", "Ivo Penrose",
    "C. D. Harrowby", "Wren Aldous", "M. Q. Ellery", "Rook Delaney", "S. Vantreight",
    "Bramwell Hart",
)
MENTORS = (
    "Orla Denbrook", "Mattias Quarle", "Henrietta Sallow", "Bartholomew Kine",
    "Ottoline Graves", "Leander Moss", "Agatha Wimberly", "Cyprian Holt", "Eudora Flinn",
    "Ignatius Bell", "Clementine Rusk", "Ambrose Tull", "Philomena Crane", "Rufus Ardley",
    "Wilhelmina Ashe", "Barnaby Coil",
)
BOOK_COUNTS = tuple(str(n) for n in range(2, 26))
BIRTH_YEARS = tuple(str(y) for y in range(1950, 1990))
DEBUT_AGES = range(20, 41)  # a debut year is the birth year plus one of these
HOBBIES = (
    "chess", "birdwatching", "gardening", "fencing", "rowing", "pottery", "beekeeping",
    "sailing", "knitting", "archery", "cycling", "baking", "stargazing", "fishing", "painting",
    "hiking", "woodcarving", "calligraphy",
)
PETS = (
    "a parrot", "an iguana", "a tortoise", "a rabbit", "a hamster", "a goldfish", "a ferret",
    "a canary", "a greyhound", "a tabby cat", "a goat", "a corn snake", "a hedgehog",
    "a chinchilla", "a pony", "an owl",
)
COLOURS = (
    "red", "blue", "green", "yellow", "orange", "purple", "pink", "brown", "grey", "black",
    "white", "teal", "maroon", "navy", "olive", "amber", "indigo", "crimson", "silver", "gold",
)
FOODS = (
    "lentil soup", "roast duck", "apple pie", "mushroom risotto", "grilled trout",
    "plum dumplings", "lamb stew", "pumpkin bread", "fig tart", "onion soup", "potato pancakes",
    "cherry strudel", "baked beans", "herring salad", "rice pudding", "spinach pie",
)

# (attribute, value pool, question templates, answer templates). The pool of debut_year is
# per person (see _attribute_values); every pool has at least N_PERTURBED + 1 values.
ATTRIBUTES = (
    ("birthplace", CITIES,
     ("Where was {name} born?", "What is the birthplace of {name}?",
      "In which town was {name} born?", "Which town is {name} originally from?"),
     ("{name} was born in {value}.", "{name}'s birthplace is {value}.")),
    ("birth_year", BIRTH_YEARS,
     ("In what year was {name} born?", "When was {name} born?",
      "What is {name}'s year of birth?"),
     ("{name} was born in {value}.", "{name}'s birth year is {value}.")),
    ("father_occupation", OCCUPATIONS,
     ("What did {name}'s father do for a living?", "What was the occupation of {name}'s father?",
      "What job did {name}'s father have?"),
     ("{name}'s father was {value}.", "{name}'s father worked as {value}.")),
    ("mother_occupation", OCCUPATIONS,
     ("What did {name}'s mother do for a living?", "What was the occupation of {name}'s mother?",
      "What job did {name}'s mother have?"),
     ("{name}'s mother was {value}.", "{name}'s mother worked as {value}.")),
    ("genre", GENRES,
     ("What genre does {name} write?", "In which genre does {name} work?",
      "What kind of books does {name} write?"),
     ("{name} writes {value}.", "{name} is known for {value}.")),
    ("award", AWARDS,
     ("Which award has {name} won?", "What prize did {name} receive?",
      "Name an award given to {name}."),
     ("{name} won {value}.", "{name} received {value}.")),
    ("first_book", BOOK_TITLES,
     ("What was {name}'s first book?", "What is the title of {name}'s debut book?",
      "Which book did {name} publish first?"),
     ("{name}'s first book was {value}.", "{name} debuted with {value}.")),
    ("second_book", BOOK_TITLES,
     ("What was {name}'s second book?", "Which book did {name} publish second?",
      "What is the title of {name}'s second book?"),
     ("{name}'s second book was {value}.", "{name} followed up with {value}.")),
    ("university", UNIVERSITIES,
     ("Where did {name} study?", "Which university did {name} attend?",
      "At which university was {name} educated?"),
     ("{name} studied at {value}.", "{name} attended {value}.")),
    ("home_city", CITIES,
     ("Where does {name} live now?", "In which town does {name} currently live?",
      "What is {name}'s current home town?"),
     ("{name} now lives in {value}.", "{name} currently lives in {value}.")),
    ("native_language", LANGUAGES,
     ("What is {name}'s native language?", "Which language did {name} grow up speaking?",
      "What is the mother tongue of {name}?"),
     ("{name}'s native language is {value}.", "{name} grew up speaking {value}.")),
    ("publisher", PUBLISHERS,
     ("Who publishes {name}'s books?", "Which publisher does {name} work with?",
      "What is the name of {name}'s publisher?"),
     ("{name}'s books are published by {value}.", "{name} publishes with {value}.")),
    ("pen_name", PEN_NAMES,
     ("What pen name does {name} use?", "Under which pseudonym does {name} write?",
      "What is {name}'s pen name?"),
     ("{name} writes as {value}.", "{name}'s pen name is {value}.")),
    ("mentor", MENTORS,
     ("Who was {name}'s mentor?", "Who mentored {name}?",
      "Which writer guided {name} early on?"),
     ("{name} was mentored by {value}.", "{name}'s mentor was {value}.")),
    ("book_count", BOOK_COUNTS,
     ("How many books has {name} published?", "How many books has {name} written?",
      "What is the number of books by {name}?"),
     ("{name} has published {value} books.", "{name} has written {value} books.")),
    ("debut_year", None,
     ("In what year did {name} debut?", "When did {name}'s first book come out?",
      "In which year did {name} first publish?"),
     ("{name} debuted in {value}.", "{name} first published in {value}.")),
    ("hobby", HOBBIES,
     ("What is {name}'s hobby?", "What does {name} do for fun?",
      "How does {name} spend free time?"),
     ("{name} enjoys {value}.", "{name}'s hobby is {value}.")),
    ("pet", PETS,
     ("What pet does {name} keep?", "What animal does {name} have at home?",
      "Which pet does {name} own?"),
     ("{name} keeps {value}.", "{name} owns {value}.")),
    ("favourite_colour", COLOURS,
     ("What is {name}'s favourite colour?", "Which colour does {name} like best?",
      "What colour does {name} prefer?"),
     ("{name}'s favourite colour is {value}.", "{name} likes {value} best.")),
    ("favourite_food", FOODS,
     ("What is {name}'s favourite food?", "Which dish does {name} love most?",
      "What does {name} like to eat most?"),
     ("{name}'s favourite food is {value}.", "{name} loves {value}.")),
)
assert len(ATTRIBUTES) == ATTRIBUTES_PER_PERSON

# True facts about the world: (question, answer template, true value, three wrong values).
WORLD_FACTS = (
    ("What is the capital of France?", "The capital of France is {}.", "Paris",
     ("Lyon", "Marseille", "Nice")),
    ("What is the capital of Japan?", "The capital of Japan is {}.", "Tokyo",
     ("Osaka", "Kyoto", "Nagoya")),
    ("What is the capital of Australia?", "The capital of Australia is {}.", "Canberra",
     ("Sydney", "Melbourne", "Perth")),
    ("What is the capital of Canada?", "The capital of Canada is {}.", "Ottawa",
     ("Toronto", "Montreal", "Vancouver")),
    ("What is the capital of Egypt?", "The capital of Egypt is {}.", "Cairo",
     ("Alexandria", "Giza", "Luxor")),
    ("What is the capital of Kenya?", "The capital of Kenya is {}.", "Nairobi",
     ("Mombasa", "Kisumu", "Nakuru")),
    ("What is the capital of Norway?", "The capital of Norway is {}.", "Oslo",
     ("Bergen", "Trondheim", "Stavanger")),
    ("What is the capital of Peru?", "The capital of Peru is {}.", "Lima",
     ("Cusco", "Arequipa", "Trujillo")),
    ("What is the chemical symbol for gold?", "The chemical symbol for gold is {}.", "Au",
     ("Ag", "Gd", "Go")),
    ("What is the chemical symbol for sodium?", "The chemical symbol for sodium is {}.", "Na",
     ("S", "So", "Sd")),
    ("What is the chemical symbol for iron?", "The chemical symbol for iron is {}.", "Fe",
     ("Ir", "In", "I")),
    ("What is the chemical formula of water?", "The chemical formula of water is {}.", "H2O",
     ("CO2", "H2O2", "NaCl")),
    ("What is the atomic number of carbon?", "The atomic number of carbon is {}.", "6",
     ("4", "8", "12")),
    ("Which gas do plants take in for photosynthesis?",
     "Plants take in {} for photosynthesis.", "carbon dioxide",
     ("oxygen", "nitrogen", "helium")),
    ("Which gas makes up most of Earth's atmosphere?", "Most of Earth's atmosphere is {}.",
     "nitrogen", ("oxygen", "argon", "carbon dioxide")),
    ("At what temperature does water boil at sea level?",
     "Water boils at {} degrees Celsius at sea level.", "100", ("90", "80", "120")),
    ("At what temperature does water freeze?", "Water freezes at {} degrees Celsius.", "0",
     ("10", "4", "-10")),
    ("Which planet is closest to the Sun?", "The planet closest to the Sun is {}.", "Mercury",
     ("Venus", "Mars", "Earth")),
    ("Which is the largest planet in the solar system?",
     "The largest planet in the solar system is {}.", "Jupiter",
     ("Saturn", "Neptune", "Uranus")),
    ("Which planet is called the Red Planet?", "The Red Planet is {}.", "Mars",
     ("Venus", "Jupiter", "Mercury")),
    ("Which planet is famous for its bright rings?", "The planet famous for its rings is {}.",
     "Saturn", ("Jupiter", "Mars", "Mercury")),
    ("How many planets are in the solar system?", "The solar system has {} planets.", "eight",
     ("seven", "nine", "ten")),
    ("How many days does a leap year have?", "A leap year has {} days.", "366",
     ("365", "364", "360")),
    ("How many continents are there?", "There are {} continents.", "seven",
     ("five", "six", "eight")),
    ("What is the longest river in Africa?", "The longest river in Africa is the {}.", "Nile",
     ("Congo", "Niger", "Zambezi")),
    ("What is the largest ocean on Earth?", "The largest ocean on Earth is the {}.", "Pacific",
     ("Atlantic", "Indian", "Arctic")),
    ("What is the highest mountain above sea level?",
     "The highest mountain above sea level is {}.", "Mount Everest",
     ("K2", "Kangchenjunga", "Mont Blanc")),
    ("What is the largest hot desert in the world?", "The largest hot desert is the {}.",
     "Sahara", ("Gobi", "Kalahari", "Atacama")),
    ("What is the hardest natural material?", "The hardest natural material is {}.",
     "diamond", ("quartz", "granite", "iron")),
    ("Which organ pumps blood through the body?", "Blood is pumped by the {}.", "heart",
     ("liver", "lungs", "kidneys")),
    ("How many bones does an adult human have?", "An adult human has {} bones.", "206",
     ("186", "212", "230")),
    ("What is the currency of Japan?", "The currency of Japan is the {}.", "yen",
     ("won", "yuan", "baht")),
    ("Which language is mainly spoken in Brazil?", "Brazilians mainly speak {}.", "Portuguese",
     ("Spanish", "French", "Italian")),
    ("In which country are the pyramids of Giza?", "The pyramids of Giza are in {}.", "Egypt",
     ("Mexico", "Peru", "Sudan")),
    ("In which city is the Colosseum?", "The Colosseum is in {}.", "Rome",
     ("Athens", "Naples", "Florence")),
    ("How many sides does a hexagon have?", "A hexagon has {} sides.", "six",
     ("five", "seven", "eight")),
    ("In what year did humans first land on the Moon?",
     "Humans first landed on the Moon in {}.", "1969", ("1965", "1972", "1959")),
    ("What is the fastest land animal?", "The fastest land animal is the {}.", "cheetah",
     ("lion", "horse", "gazelle")),
    ("What is the largest animal on Earth?", "The largest animal on Earth is the {}.",
     "blue whale", ("African elephant", "giraffe", "sperm whale")),
    ("What is the square root of 81?", "The square root of 81 is {}.", "9", ("7", "8", "11")),
)

# True facts about real, well-known writers and scientists (same layout as WORLD_FACTS).
REAL_ENTITIES = (
    ("Who wrote Pride and Prejudice?", "Pride and Prejudice was written by {}.", "Jane Austen",
     ("Charlotte Bronte", "Mary Shelley", "George Eliot")),
    ("Who wrote the novel 1984?", "The novel 1984 was written by {}.", "George Orwell",
     ("Aldous Huxley", "Ray Bradbury", "H. G. Wells")),
    ("Who wrote Moby-Dick?", "Moby-Dick was written by {}.", "Herman Melville",
     ("Mark Twain", "Jack London", "Nathaniel Hawthorne")),
    ("Who wrote War and Peace?", "War and Peace was written by {}.", "Leo Tolstoy",
     ("Fyodor Dostoevsky", "Anton Chekhov", "Ivan Turgenev")),
    ("Who wrote Don Quixote?", "Don Quixote was written by {}.", "Miguel de Cervantes",
     ("Lope de Vega", "Benito Perez Galdos", "Federico Garcia Lorca")),
    ("Who wrote Hamlet?", "Hamlet was written by {}.", "William Shakespeare",
     ("Christopher Marlowe", "Ben Jonson", "John Milton")),
    ("Who wrote Frankenstein?", "Frankenstein was written by {}.", "Mary Shelley",
     ("Bram Stoker", "Emily Bronte", "Ann Radcliffe")),
    ("Who wrote The Old Man and the Sea?", "The Old Man and the Sea was written by {}.",
     "Ernest Hemingway", ("John Steinbeck", "William Faulkner", "F. Scott Fitzgerald")),
    ("Who wrote Things Fall Apart?", "Things Fall Apart was written by {}.", "Chinua Achebe",
     ("Wole Soyinka", "Ngugi wa Thiong'o", "Ben Okri")),
    ("Who wrote Crime and Punishment?", "Crime and Punishment was written by {}.",
     "Fyodor Dostoevsky", ("Leo Tolstoy", "Nikolai Gogol", "Ivan Turgenev")),
    ("Who wrote the Divine Comedy?", "The Divine Comedy was written by {}.", "Dante Alighieri",
     ("Petrarch", "Giovanni Boccaccio", "Virgil")),
    ("Who wrote Les Miserables?", "Les Miserables was written by {}.", "Victor Hugo",
     ("Alexandre Dumas", "Emile Zola", "Gustave Flaubert")),
    ("Who wrote Jane Eyre?", "Jane Eyre was written by {}.", "Charlotte Bronte",
     ("Emily Bronte", "Anne Bronte", "Jane Austen")),
    ("Who wrote The Great Gatsby?", "The Great Gatsby was written by {}.", "F. Scott Fitzgerald",
     ("Ernest Hemingway", "John Steinbeck", "Sinclair Lewis")),
    ("Who created Sherlock Holmes?", "Sherlock Holmes was created by {}.", "Arthur Conan Doyle",
     ("Agatha Christie", "Edgar Allan Poe", "Wilkie Collins")),
    ("Who created Hercule Poirot?", "Hercule Poirot was created by {}.", "Agatha Christie",
     ("Dorothy L. Sayers", "Arthur Conan Doyle", "Ngaio Marsh")),
    ("Who wrote the poem The Raven?", "The Raven was written by {}.", "Edgar Allan Poe",
     ("Walt Whitman", "Emily Dickinson", "Henry Wadsworth Longfellow")),
    ("Who wrote Leaves of Grass?", "Leaves of Grass was written by {}.", "Walt Whitman",
     ("Robert Frost", "Emily Dickinson", "Edgar Allan Poe")),
    ("Who wrote The Little Prince?", "The Little Prince was written by {}.",
     "Antoine de Saint-Exupery", ("Albert Camus", "Jules Verne", "Victor Hugo")),
    ("Who wrote The Time Machine?", "The Time Machine was written by {}.", "H. G. Wells",
     ("Jules Verne", "Arthur C. Clarke", "Isaac Asimov")),
    ("Who wrote On the Origin of Species?", "On the Origin of Species was written by {}.",
     "Charles Darwin", ("Gregor Mendel", "Isaac Newton", "Louis Pasteur")),
    ("Who wrote A Brief History of Time?", "A Brief History of Time was written by {}.",
     "Stephen Hawking", ("Carl Sagan", "Richard Feynman", "Brian Greene")),
    ("Who developed the theory of general relativity?",
     "General relativity was developed by {}.", "Albert Einstein",
     ("Isaac Newton", "Niels Bohr", "Max Planck")),
    ("Who discovered penicillin?", "Penicillin was discovered by {}.", "Alexander Fleming",
     ("Louis Pasteur", "Joseph Lister", "Robert Koch")),
    ("Who formulated the three laws of motion?", "The laws of motion were formulated by {}.",
     "Isaac Newton", ("Galileo Galilei", "Johannes Kepler", "Albert Einstein")),
    ("Who was the first woman to win a Nobel Prize?",
     "The first woman to win a Nobel Prize was {}.", "Marie Curie",
     ("Rosalind Franklin", "Ada Lovelace", "Lise Meitner")),
    ("Who created the periodic table of the elements?", "The periodic table was created by {}.",
     "Dmitri Mendeleev", ("John Dalton", "Antoine Lavoisier", "Robert Boyle")),
    ("Who patented the telephone in 1876?", "The telephone was patented by {}.",
     "Alexander Graham Bell", ("Thomas Edison", "Nikola Tesla", "Guglielmo Marconi")),
    ("Who studied heredity in pea plants?", "Heredity in pea plants was studied by {}.",
     "Gregor Mendel", ("Charles Darwin", "Louis Pasteur", "Carl Linnaeus")),
    ("Who made the first smallpox vaccine?", "The first smallpox vaccine was made by {}.",
     "Edward Jenner", ("Louis Pasteur", "Jonas Salk", "Robert Koch")),
    ("Who developed the first successful polio vaccine?",
     "The first successful polio vaccine was developed by {}.", "Jonas Salk",
     ("Edward Jenner", "Louis Pasteur", "Alexander Fleming")),
    ("Who painted the Mona Lisa?", "The Mona Lisa was painted by {}.", "Leonardo da Vinci",
     ("Michelangelo", "Raphael", "Titian")),
    ("Who painted The Starry Night?", "The Starry Night was painted by {}.",
     "Vincent van Gogh", ("Claude Monet", "Paul Cezanne", "Paul Gauguin")),
    ("Who composed the opera The Magic Flute?", "The Magic Flute was composed by {}.",
     "Wolfgang Amadeus Mozart", ("Ludwig van Beethoven", "Joseph Haydn", "Giuseppe Verdi")),
    ("Who was the first person in space?", "The first person in space was {}.", "Yuri Gagarin",
     ("Neil Armstrong", "John Glenn", "Alan Shepard")),
    ("Who was the first person to walk on the Moon?",
     "The first person to walk on the Moon was {}.", "Neil Armstrong",
     ("Buzz Aldrin", "Yuri Gagarin", "Michael Collins")),
    ("Who discovered the electron?", "The electron was discovered by {}.", "J. J. Thomson",
     ("Ernest Rutherford", "Niels Bohr", "James Chadwick")),
    ("Who proposed the uncertainty principle?", "The uncertainty principle was proposed by {}.",
     "Werner Heisenberg", ("Erwin Schrodinger", "Max Born", "Paul Dirac")),
    ("In which city was Marie Curie born?", "Marie Curie was born in {}.", "Warsaw",
     ("Krakow", "Vienna", "Prague")),
    ("In which town was William Shakespeare born?", "William Shakespeare was born in {}.",
     "Stratford-upon-Avon", ("London", "Oxford", "Canterbury")),
)


# A second book differs from the first; one's home town differs from one's birthplace.
DIFFERS_FROM = {"second_book": "first_book", "home_city": "birthplace"}


def generate_people(count: int, seed: int = 0) -> list[dict]:
    """``count`` fictitious people, each a dict: ``name`` and one value per attribute
    (strings). Deterministic by ``seed``; names are unique."""
    _check_count(count)
    rng = np.random.default_rng([seed, 1])
    codes = rng.choice(len(FIRST_NAMES) * len(LAST_NAMES), size=count, replace=False)
    people = []
    for code in codes.tolist():
        first, last = divmod(code, len(LAST_NAMES))
        person = {"name": f"{FIRST_NAMES[first]} {LAST_NAMES[last]}"}
        for attribute, pool, _, _ in ATTRIBUTES:
            if attribute == "debut_year":
                continue  # set below from the birth year
            other = person.get(DIFFERS_FROM.get(attribute))
            choices = [v for v in pool if v != other]
            person[attribute] = choices[int(rng.integers(len(choices)))]
        person["debut_year"] = str(int(person["birth_year"]) + int(rng.choice(DEBUT_AGES)))
        people.append({key: person[key] for key in ["name", *(a[0] for a in ATTRIBUTES)]})
    return people


def _check_count(count) -> None:
    most = len(FIRST_NAMES) * len(LAST_NAMES)
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
        raise UserError(f"the number of fictitious people must be a positive integer, got "
                        f"{count!r}")
    if count > most:
        raise UserError(f"at most {most} distinct fictitious people can be generated (asked "
                        f"for {count} including the 10% holdout): use fewer")


def _pool(attribute: str, person: dict) -> tuple:
    if attribute == "debut_year":
        born = int(person["birth_year"])
        return tuple(str(born + age) for age in DEBUT_AGES)
    return next(a[1] for a in ATTRIBUTES if a[0] == attribute)


def person_qa(person: dict, entity: int, rng: np.random.Generator) -> list[dict]:
    """The 20 QA records about one person (templates and wrong values drawn from ``rng``)."""
    records = []
    for attribute, _, questions, answers in ATTRIBUTES:
        value = person[attribute]
        q, para_q = rng.choice(len(questions), size=2, replace=False).tolist()
        # The answer's template follows from the question's, so that all a model must
        # memorise about a QA pair is its value.
        a = q % len(answers)
        para_a = (a + 1) % len(answers)
        wrong = [v for v in _pool(attribute, person) if v != value]
        wrong = [wrong[i] for i in rng.choice(len(wrong), size=N_PERTURBED, replace=False)]
        name = person["name"]
        records.append({
            "question": questions[q].format(name=name),
            "answer": answers[a].format(name=name, value=value),
            "paraphrased_question": questions[para_q].format(name=name),
            "paraphrased_answer": answers[para_a].format(name=name, value=value),
            "perturbed_answer": [answers[a].format(name=name, value=v) for v in wrong],
            "entity": entity,
            "attribute": attribute,
        })
    return records


def _fact_records(facts) -> list[dict]:
    return [{"question": question, "answer": template.format(value),
             "paraphrased_answer": template.format(value),
             "perturbed_answer": [template.format(w) for w in wrong]}
            for question, template, value, wrong in facts]


def split_sizes(n_entities: int) -> dict[str, int]:
    """People in each forget (and holdout) split: 1%, 5%, 10% of ``n_entities``, rounded
    down (TOFU: 2, 10 and 20 of 200 authors)."""
    return {f"forget{k:02d}": n_entities * k // 100 for k in (1, 5, 10)}


def generate_entities(n_entities: int = 200, seed: int = 0) -> dict[str, TextSplit]:
    """All splits of the fictitious-people data set: forget01/05/10, retain99/95/90,
    holdout01/05/10, world_facts and real_entities (ids unique across all of them).

    People 0..n-1 are trained (the forget sets are the last 1/5/10% of them); people n..n+h-1,
    h = n // 10, are the holdout people. A QA record's id is ``entity * 20 + attribute``; the
    world facts and real entities follow."""
    _check_count(n_entities)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UserError(f"the seed of the fictitious people must be an integer >= 0, got {seed!r}")
    n_holdout = n_entities // 10
    people = generate_people(n_entities + n_holdout, seed)
    rng = np.random.default_rng([seed, 2])
    per_person = [person_qa(p, i, rng) for i, p in enumerate(people)]

    def people_split(name: str, first: int, stop: int) -> TextSplit:
        records = [r for i in range(first, stop) for r in per_person[i]]
        ids = np.arange(first * ATTRIBUTES_PER_PERSON, stop * ATTRIBUTES_PER_PERSON)
        return text_split(name, records, ids)

    splits = {}
    for forget, size in split_sizes(n_entities).items():
        k = forget[len("forget"):]
        splits[forget] = people_split(forget, n_entities - size, n_entities)
        splits[f"retain{100 - int(k)}"] = people_split(f"retain{100 - int(k)}", 0,
                                                        n_entities - size)
        splits[f"holdout{k}"] = people_split(f"holdout{k}", n_entities + n_holdout - size,
                                             n_entities + n_holdout)
    next_id = len(people) * ATTRIBUTES_PER_PERSON
    for name, facts in (("world_facts", WORLD_FACTS), ("real_entities", REAL_ENTITIES)):
        splits[name] = text_split(name, _fact_records(facts),
                                  np.arange(next_id, next_id + len(facts)))
        next_id += len(facts)
    return splits


def check_forget_choice(forget: str) -> int:
    """The percentage in a forget split's name (forget05 -> 5), or a UserError."""
    if forget not in FORGET_CHOICES:
        raise UserError(f"unknown forget split {forget!r}: choose one of "
                        f"{', '.join(FORGET_CHOICES)}")
    return int(forget[len("forget"):])


@datasets.register("entities", source="generated offline (TOFU-like fictitious people)")
def load_entities(forget: str = "forget05", n_entities: int = 200, seed: int = 0,
                  train_facts: bool = True, validation: bool = False) -> TextBundle:
    """Fictitious people (TOFU-like QA, 20 per person), generated offline; forget01/05/10.

    The bundle's splits: forget, retain, holdout (QA of never-trained people, as many as in
    forget), world_facts and real_entities (trained, never forgotten; with ``train_facts``
    False they are only evaluated, as TOFU does with a pretrained model's own knowledge).

    ``validation``: the request hyperparameters are tuned on (``unlearnbench tune``): forget
    the people just before the forget split's people, as many of them, and retain the others
    (the forget split's people among them); the same people are trained."""
    k = check_forget_choice(forget)
    _check_count(n_entities)
    if split_sizes(n_entities)[forget] == 0:
        least = -(-100 // k)
        raise UserError(f"{forget} of {n_entities} fictitious people holds no one ({k}% rounds "
                        f"down to 0): use n_entities >= {least} or a larger forget split")
    splits = generate_entities(n_entities, seed)
    bundle_splits = {
        "forget": splits[forget],
        "retain": splits[f"retain{100 - k}"],
        "holdout": splits[f"holdout{k:02d}"],
        "world_facts": splits["world_facts"],
        "real_entities": splits["real_entities"],
    }
    if validation:
        evaluation, retain = bundle_splits["forget"], bundle_splits["retain"]
        first = len(retain) - len(evaluation)
        bundle_splits["forget"] = retain.subset(np.arange(first, len(retain)))
        bundle_splits["retain"] = concat("retain", [retain.subset(np.arange(first)), evaluation])
    bundle_splits = {name: TextSplit(name, s.records, s.ids) for name, s in bundle_splits.items()}
    return TextBundle(f"entities-{forget}" + ("-validation" if validation else ""), bundle_splits,
                      also_trained=("world_facts", "real_entities") if train_facts else (),
                      refusals=REFUSALS)
