#!/usr/bin/env python3
"""Boot L0 (QEMU TCG) with the L1 kernel, run PAYLOAD_DIR/run.sh inside L1, report phases.

Used through ../run-l1.sh; see ../README.md. Exit status: the payload's status as printed by
L1 (`NESTED-EXIT <n>`), or 124 on timeout, 123 when L1 ended without that line.
"""
import argparse
import datetime
import fcntl
import glob
import hashlib
import json
import os
import re
import select
import signal
import subprocess
import sys
import tarfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import initramfs  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
MARK = re.compile(rb"NESTED-(PHASE|EXIT|OUT) (\S+)")
L1_MODULES = ["kvm_hv", "virtio_blk"]


def env(name):
    value = os.environ.get(name)
    if not value:
        sys.exit(f"run-l1: {name} is not set (run through run-l1.sh)")
    return value


def base_initramfs(cache, kernel_root, busybox):
    """The L1 base archive (busybox, /init, modules), cached by a hash of its inputs."""
    h = hashlib.sha256()
    for path in (os.path.join(HERE, "l1-init.sh"), os.path.join(HERE, "initramfs.py"), busybox):
        with open(path, "rb") as fh:
            h.update(fh.read())
    h.update(kernel_root.encode())
    h.update(",".join(L1_MODULES).encode())
    out = os.path.join(cache, "l1-initramfs", h.hexdigest()[:16] + ".cpio.gz")
    if os.path.exists(out):
        return out
    os.makedirs(os.path.dirname(out), exist_ok=True)
    c = initramfs.Cpio()
    initramfs.add_busybox(c, busybox)
    with open(os.path.join(HERE, "l1-init.sh"), "rb") as fh:
        c.add_file("init", fh.read(), 0o755)
    order = []
    for name, data in initramfs.stage_modules(kernel_root, L1_MODULES):
        c.add_file(f"lib/modules/nested/{name}.ko", data)
        order.append(name)
    c.add_file("lib/modules/nested/order", ("\n".join(order) + "\n").encode())
    c.write(out, compress=True)
    return out


def payload_initramfs(payload_dir, out):
    """Second archive (trap 6: the kernel unpacks concatenated archives): the payload tree at
    /payload, symlinks dereferenced. Left uncompressed: it may hold tens of MB of binaries and
    inflating them under TCG costs more than reading them."""
    if not os.path.isfile(os.path.join(payload_dir, "run.sh")):
        sys.exit(f"run-l1: {payload_dir}/run.sh does not exist")
    c = initramfs.Cpio()
    c.add_tree(payload_dir, "payload")
    return c.write(out, compress=False)


def qemu_command(args, vmlinux, initrd, out_img):
    """The L0 command line. OUT_IMG, if any, is L1's one virtio disk (/dev/vda)."""
    append = "console=hvc0 panic=1 " + ("" if args.verbose else "quiet ")
    if out_img:
        append += "nested.out=1 "
    append += args.append
    if args.machine == "pseries":
        cmd = ["qemu-system-ppc64", "-M", "pseries,cap-nested-hv=on,x-vof=on", "-cpu", "power9",
               "-nodefaults", "-serial", "mon:stdio"]
    else:
        # No -nodefaults here: without the default BMC, L1's poweroff never ends QEMU.
        cmd = ["qemu-system-ppc64", "-M", "powernv9"]
    cmd += ["-accel", "tcg", "-smp", str(args.smp), "-m", args.mem, "-nographic", "-no-reboot",
            "-kernel", vmlinux, "-initrd", initrd, "-append", append.strip()]
    if out_img:
        cmd += ["-drive", f"file={out_img},format=raw,if=none,id=out,cache=unsafe",
                "-device", "virtio-blk-pci,drive=out"]
    return cmd


def kill_group(proc):
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=5)
            return
        except subprocess.TimeoutExpired:
            continue


def extract_out(image, dest):
    """Unpack the tar L1 wrote onto the output disk; returns the number of entries. The
    archive comes from the guest side, so only plain files and directories with relative,
    non-escaping names are accepted (Debian's Python 3.11.2 has no tarfile filters)."""
    with tarfile.open(image, "r:") as tar:
        members = tar.getmembers()
        for m in members:
            norm = os.path.normpath(m.name)
            if os.path.isabs(m.name) or norm == ".." or norm.startswith("../"):
                raise tarfile.ReadError(f"unsafe member name {m.name!r}")
            if not (m.isfile() or m.isdir()):
                raise tarfile.ReadError(f"member {m.name!r} is not a file or directory")
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, members=members, filter="data")
        else:
            tar.extractall(dest, members=members)
        return len(members)


def other_emulators():
    """PIDs of qemu-system-ppc64 processes (other runs, other workers' runs)."""
    # The kernel truncates comm to 15 characters: "qemu-system-ppc" (also matches the
    # 32-bit emulator, which is fine: it competes for the same cores).
    r = subprocess.run(["pgrep", "-x", "qemu-system-ppc"], capture_output=True, text=True)
    return [int(p) for p in r.stdout.split()]


def wait_for_idle(limit):
    """The host has 2 cores: wait up to LIMIT seconds for other L0 emulators to finish so
    that phase times are not measured against a second emulator. Returns the PIDs still
    running when we start (recorded in result.json)."""
    deadline = time.monotonic() + limit
    pids = other_emulators()
    if pids:
        print(f"run-l1: waiting up to {limit:.0f}s for other emulators {pids} to finish",
              file=sys.stderr)
    while pids and time.monotonic() < deadline:
        time.sleep(2)
        pids = other_emulators()
    if pids:
        print(f"run-l1: warning: starting alongside other emulators {pids}", file=sys.stderr)
    return pids


def main():
    ap = argparse.ArgumentParser(prog="run-l1.sh")
    ap.add_argument("payload_dir")
    ap.add_argument("--machine", choices=["pseries", "powernv"], default="pseries")
    ap.add_argument("--timeout", type=float, default=900, help="seconds (default 900)")
    ap.add_argument("--mem", default="4G", help="L1 memory (default 4G)")
    ap.add_argument("--out", metavar="DIR",
                    help="attach an output disk; L1's /out is unpacked into DIR afterwards")
    ap.add_argument("--out-image", metavar="FILE",
                    help="attach FILE (made sparse, --out-size) as the output disk and keep it "
                    "as L1 left it: a payload that writes $NESTED_OUT_DEV raw (a vmcore) leaves "
                    "/out empty; nothing is unpacked")
    ap.add_argument("--out-size", default="4G", help="output disk size (sparse, default 4G)")
    ap.add_argument("--smp", type=int, default=1, help="L1 CPUs (default 1)")
    ap.add_argument("--log", help="console log file (default: RUN_DIR/console.log)")
    ap.add_argument("--run-dir", help="work directory (default: CACHE/l1-runs/<timestamp>)")
    ap.add_argument("--append", default="", help="extra L1 kernel command line")
    ap.add_argument("--keep-initrd", action="store_true",
                    help="keep RUN_DIR/l1-initrd.img (it is rebuilt from inputs otherwise)")
    ap.add_argument("--verbose", action="store_true", help="no `quiet` on the L1 command line")
    ap.add_argument("--wait-idle", type=float, default=600, metavar="S",
                    help="wait up to S seconds for other qemu-system-ppc64 to end (default 600)")
    ap.add_argument("--quiet-console", action="store_true",
                    help="do not echo the console to stdout (still logged)")
    ap.add_argument("--stamped-console", action="store_true",
                    help="echo whole console lines with their host-time stamp, as logged "
                    "(stdout then never holds a bare console line)")
    args = ap.parse_args()
    if args.out and args.out_image:
        ap.error("--out and --out-image are two uses of the one output disk: pick one")

    cache = env("NESTED_CACHE")
    kernel_root = glob.glob(os.path.join(cache, "l1-kernel", env("L1_KERNEL_DIR"), "root"))
    if not kernel_root:
        sys.exit("run-l1: L1 kernel not in the cache; run integration-tests/nested/setup.sh")
    kernel_root = kernel_root[0]
    vmlinux = os.path.join(kernel_root, "boot", "vmlinux-" + env("L1_KERNEL_ABI"))
    busybox = os.path.join(cache, "busybox", env("BUSYBOX_DIR"), "busybox")

    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S")
    run_dir = args.run_dir or os.path.join(cache, "l1-runs", f"{stamp}-{os.getpid()}")
    os.makedirs(run_dir, exist_ok=True)
    log_path = args.log or os.path.join(run_dir, "console.log")

    base = base_initramfs(cache, kernel_root, busybox)
    payload = os.path.join(run_dir, "payload.cpio")
    payload_initramfs(args.payload_dir, payload)
    initrd = os.path.join(run_dir, "l1-initrd.img")
    with open(initrd, "wb") as out:
        for part in (base, payload):
            with open(part, "rb") as fh:
                out.write(fh.read())
            # The kernel looks for the next cpio magic only at 4-byte aligned offsets and
            # skips NUL padding, so pad each archive (the gzip'd base has any length).
            out.write(b"\0" * (-out.tell() % 4))
    os.remove(payload)

    out_img = None
    if args.out or args.out_image:
        out_img = args.out_image or os.path.join(run_dir, "out.img")
        subprocess.run(["truncate", "-s", "0", out_img], check=True)
        subprocess.run(["truncate", "-s", args.out_size, out_img], check=True)

    cmd = qemu_command(args, vmlinux, initrd, out_img)
    # Serialize our own runs (flock), then wait for anyone else's emulator.
    lock = open(os.path.join(cache, ".l0.lock"), "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    concurrent = wait_for_idle(args.wait_idle)
    phases = []
    exit_code = None
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"run-l1: host load at start: {uptime}", file=sys.stderr)
    print("run-l1: " + " ".join(cmd), file=sys.stderr)
    # SIGTERM/SIGHUP (e.g. from timeout(1) or a closed terminal) must still reach the
    # finally below that kills L0, which runs in its own session.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, _frame: sys.exit(128 + signum))
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    timed_out = False
    buf = b""
    with open(log_path, "wb") as log:
        try:
            fd = proc.stdout.fileno()
            while True:
                left = args.timeout - (time.monotonic() - t0)
                if left <= 0:
                    timed_out = True
                    break
                ready, _, _ = select.select([fd], [], [], min(left, 1.0))
                if not ready:
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                now = time.monotonic() - t0
                if not args.quiet_console and not args.stamped_console:
                    sys.stdout.buffer.write(chunk)
                    sys.stdout.flush()
                buf += chunk
                lines = buf.split(b"\n")
                buf = lines.pop()
                for line in lines:
                    stamped = b"[%8.3f] " % now + line.rstrip(b"\r") + b"\n"
                    log.write(stamped)
                    if args.stamped_console and not args.quiet_console:
                        sys.stdout.buffer.write(stamped)
                        sys.stdout.flush()
                    for kind, value in MARK.findall(line):
                        if kind == b"PHASE":
                            phases.append((value.decode(errors="replace"), round(now, 3)))
                        elif kind == b"EXIT" and value.isdigit():
                            exit_code = int(value)
                log.flush()
        finally:
            if buf:
                log.write(b"[%8.3f] " % (time.monotonic() - t0) + buf + b"\n")
            if timed_out or proc.poll() is None:
                # Give an L1 that printed its exit line a moment to power off, then kill.
                try:
                    proc.wait(timeout=0 if timed_out else 30)
                except subprocess.TimeoutExpired:
                    pass
                kill_group(proc)
            proc.wait()
    t_end = round(time.monotonic() - t0, 3)
    phases.append(("l0-exit", t_end))

    result = {
        "machine": args.machine,
        "command": cmd,
        "initrd_bytes": os.path.getsize(initrd),
        "phases": phases,
        "exit": exit_code,
        "timed_out": timed_out,
        "qemu_status": proc.returncode,
        "load_start": uptime,
        "concurrent_emulators_at_start": concurrent,
        "load_end": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
        "log": log_path,
    }

    if args.out_image:
        result["out_image"] = out_img
    elif out_img and exit_code is not None:
        os.makedirs(args.out, exist_ok=True)
        try:
            result["out_files"] = extract_out(out_img, args.out)
        except tarfile.ReadError as e:
            result["out_error"] = str(e)
        os.remove(out_img)
    if not args.keep_initrd:
        os.remove(initrd)
    with open(os.path.join(run_dir, "result.json"), "w") as fh:
        json.dump(result, fh, indent=1)

    print(f"\nrun-l1: phases (host seconds since L0 start), machine={args.machine}:",
          file=sys.stderr)
    for name, t in phases:
        print(f"run-l1:   {t:9.3f}  {name}", file=sys.stderr)
    print(f"run-l1: host load at end: {result['load_end']}", file=sys.stderr)
    if "out_files" in result:
        print(f"run-l1: output: {result['out_files']} entries in {args.out}", file=sys.stderr)
    if "out_error" in result:
        print(f"run-l1: output disk unreadable: {result['out_error']}", file=sys.stderr)
    print(f"run-l1: log {log_path}, result {run_dir}/result.json", file=sys.stderr)
    if timed_out:
        print(f"run-l1: TIMEOUT after {args.timeout}s (QEMU killed)", file=sys.stderr)
        return 124
    if exit_code is None:
        print("run-l1: L1 ended without a NESTED-EXIT line", file=sys.stderr)
        return 123
    if "out_error" in result:
        return 122
    print(f"run-l1: payload exit status {exit_code}", file=sys.stderr)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
