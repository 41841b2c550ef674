"""Class names in AffectNet order, and the spellings other data sets use for them."""

CLASSES = ["Neutral", "Happy", "Sad", "Surprise", "Fear", "Disgust", "Anger", "Contempt"]
NUM_CLASSES = len(CLASSES)

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


def class_index(name) -> int | None:
    """Index for a class name or number (``"Happy"``, ``"happiness"``, ``"1"``); None when unknown."""
    s = str(name).strip().lower()
    if s.isdigit():
        i = int(s)
        return i if 0 <= i < NUM_CLASSES else None
    return ALIASES.get(s)
