"""Class names in AffectNet order, and the spellings other data sets use for them."""

CLASSES = ["Neutral", "Happy", "Sad", "Surprise", "Fear", "Disgust", "Anger", "Contempt"]
NUM_CLASSES = len(CLASSES)
PROB_COLS = [f"prob_{k}" for k in range(NUM_CLASSES)]  # a predictions CSV's class probabilities
# One colour per class, the same on every chart and on the boxes drawn around faces (RGB): Okabe and Ito's
# palette for colour-blind readers, with a mid grey for Neutral that reads on light and dark backgrounds.
CLASS_COLOURS = [(140, 140, 140), (0, 158, 115), (0, 114, 178), (230, 159, 0),
                 (204, 121, 167), (240, 228, 66), (213, 94, 0), (86, 180, 233)]
# Valence and arousal, likewise.
VA_COLOURS = {"valence": "crimson", "arousal": "royalblue"}


def class_colour(k: int) -> str:
    """A class's colour as plotly takes it."""
    return "rgb({}, {}, {})".format(*CLASS_COLOURS[k % len(CLASS_COLOURS)])


# What tells the classes apart besides their colour, for colour-blind readers (under deuteranopia Neutral, Happy and
# Fear turn alike grey): a marker shape and a line dash each, in CLASSES' order
CLASS_SYMBOLS = ("circle", "square", "diamond", "triangle-up", "cross", "x", "star", "triangle-down")
CLASS_DASHES = ("solid", "dot", "dash", "longdash", "dashdot", "longdashdot", "6px,2px,1px,2px,1px,2px", "1px,3px")

# Lower-case spelling -> AffectNet index. Readers of FER+, class folders and CSV manifests map by name.
ALIASES = {
    "neutral": 0, "neutrality": 0, "calm": 0,
    "happy": 1, "happiness": 1, "joy": 1,
    "sad": 2, "sadness": 2,
    "surprise": 3, "surprised": 3,
    "fear": 4, "fearful": 4, "afraid": 4, "scared": 4,
    "disgust": 5, "disgusted": 5,
    "anger": 6, "angry": 6,
    "contempt": 7, "contemptuous": 7,
}


# How data sets number their classes. A number means other classes in each (RAF-DB's 7 is Neutral, AffectNet's
# Contempt), so numbered class folders are not read; these tell the user which name each number stands for.
NUMBERINGS = {
    "RAF-DB": dict(enumerate(["Surprise", "Fear", "Disgust", "Happy", "Sad", "Anger", "Neutral"], start=1)),
    "FER2013": dict(enumerate(["Anger", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral"])),
    "AffectNet": dict(enumerate(CLASSES)),
}


def likely_numbering(numbers) -> str | None:
    """The one data set in NUMBERINGS numbered exactly so, with or without Contempt (1-7: RAF-DB), else None: 0-6
    are FER2013's and also AffectNet's seven classes without Contempt."""
    fits = [name for name, names in NUMBERINGS.items()
            if set(numbers) in ({*names}, {k for k, c in names.items() if c != "Contempt"})]
    return fits[0] if len(fits) == 1 else None


def close_class(name) -> str | None:
    """The class a misspelt name most likely means ("happpy" -> "Happy"), or None where none is close."""
    import difflib

    match = difflib.get_close_matches(str(name).strip().lower(), list(ALIASES), n=1, cutoff=0.75)
    return CLASSES[ALIASES[match[0]]] if match else None


def class_index(name) -> int | None:
    """Index for a class name or number (``"Happy"``, ``"happiness"``, ``"1"``); None when unknown."""
    s = str(name).strip().lower()
    if s.isdigit():
        i = int(s)
        return i if 0 <= i < NUM_CLASSES else None
    return ALIASES.get(s)
