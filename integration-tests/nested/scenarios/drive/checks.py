"""drive, host checks (lib/checks.py runs this table on the console log)."""
from checks import Check

CHECKS = [
    Check("guest reached init twice (boot + reboot)", lambda r: r.inits >= 2),
    Check(lambda r: f"nproc = {r.cpus}",
          lambda r: r.has(rf"GUEST-INIT-REACHED nproc={r.cpus}\b")),
    Check("cpu1 offline (stop-self) and back online (start-cpu)",
          lambda r: r.has(rf"GUEST-CPU1-OFFLINE nproc={r.cpus - 1}\b")
          and r.has(rf"GUEST-CPU1-ONLINE nproc={r.cpus}\b")),
]
