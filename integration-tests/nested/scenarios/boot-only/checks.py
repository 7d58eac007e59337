"""boot-only, host checks (lib/checks.py runs this table on the console log)."""
from checks import Check

CHECKS = [
    Check("guest reached init", lambda r: r.inits >= 1),
]
