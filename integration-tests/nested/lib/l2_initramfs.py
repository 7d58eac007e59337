#!/usr/bin/env python3
"""Build the tiny L2 guest initramfs: static busybox + lib/l2-init.sh as /init.

    l2_initramfs.py BUSYBOX OUT.cpio.gz
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import initramfs  # noqa: E402


def main():
    busybox, out = sys.argv[1], sys.argv[2]
    c = initramfs.Cpio()
    initramfs.add_busybox(c, busybox)
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "l2-init.sh"), "rb") as fh:
        c.add_file("init", fh.read(), 0o755)
    size = c.write(out, compress=True)
    print(f"l2-initramfs: {out} ({size} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
