"""FER Lab engine: data readers, models, training, evaluation and inference for facial expression research."""
import sys

__version__ = "0.1.0"

# Windows writes redirected output (compare_runs.py A B > table.md) in its code page, which has no "Δ" or "−": such
# characters are then written as escapes instead of ending the command with UnicodeEncodeError.
for _stream in (sys.stdout, sys.stderr):
    _encoding = (getattr(_stream, "encoding", None) or "utf-8").lower().replace("-", "")
    if _encoding != "utf8" and hasattr(_stream, "reconfigure"):
        _stream.reconfigure(errors="backslashreplace")
