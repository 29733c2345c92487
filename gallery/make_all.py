"""Regenerate every GIF of the gallery: runs each ``gallery/*.py`` script in turn.

Run from the repository root (about 10-15 minutes on one core):

    python gallery/make_all.py            # all of them
    python gallery/make_all.py digits     # only the scripts whose name contains "digits"
"""
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv) -> int:
    scripts = sorted(p for p in HERE.glob("*.py") if p.name != Path(__file__).name and not p.name.startswith("_"))
    if argv:
        scripts = [p for p in scripts if any(a in p.stem for a in argv)]
    failed = []
    for s in scripts:
        t = time.time()
        print(f"== {s.name}", flush=True)
        rc = subprocess.call([sys.executable, str(s)], cwd=HERE.parent)
        print(f"== {s.name}: {'ok' if rc == 0 else f'FAILED ({rc})'} in {time.time() - t:.0f} s", flush=True)
        if rc:
            failed.append(s.name)
    big = [p.name for p in HERE.glob("*.gif") if p.stat().st_size >= 5e6]
    if big:
        print(f"over 5 MB: {', '.join(big)}")
    return 1 if failed or big else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
