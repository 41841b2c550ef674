"""FER Lab engine: data readers, models, training, evaluation and inference for facial expression research."""
import importlib
import os
import sys

__version__ = "0.1.0"

# Windows writes redirected output (compare_runs.py A B > table.md) in its code page, which has no "Δ" or "−": such
# characters are then written as escapes instead of ending the command with UnicodeEncodeError.
for _stream in (sys.stdout, sys.stderr):
    _encoding = (getattr(_stream, "encoding", None) or "utf-8").lower().replace("-", "")
    if _encoding != "utf8" and hasattr(_stream, "reconfigure"):
        _stream.reconfigure(errors="backslashreplace")

# Modules of the user's own (a backbone they registered with fer_core.models.register_backbone), imported by every
# command and the dashboard alike: FER_LAB_PLUGINS=my_nets,lab.backbones. One that fails is named, not fatal: a run
# that needs it then says so when it is loaded.
PLUGINS = [m.strip() for m in os.environ.get("FER_LAB_PLUGINS", "").split(",") if m.strip()]
PLUGIN_ERRORS: dict[str, str] = {}
for _module in PLUGINS:
    try:
        importlib.import_module(_module)
    except Exception as _e:  # the user's code: anything from SyntaxError to a missing package
        PLUGIN_ERRORS[_module] = f"{type(_e).__name__}: {_e}" + (
            f"; it names modules, not files: put {os.path.dirname(_module) or '.'} on PYTHONPATH and name "
            f"{os.path.splitext(os.path.basename(_module))[0]}" if _module.endswith(".py") or os.sep in _module else "")
        print(f"FER_LAB_PLUGINS: {_module} was not imported ({PLUGIN_ERRORS[_module]})", file=sys.stderr)
