"""Opens TUN devices for the link emulator, then becomes the given command with them.

usage: python3 tun-open.py NAME... -- COMMAND ARG...

Node cannot issue the TUNSETIFF ioctl, so this creates each layer-3 TUN device NAME (no packet-info header) in the
current network namespace and execs COMMAND with the open descriptors inherited and LINK_FDS="NAME=fd,...". The
devices are not persistent: they vanish when the command (the last holder of the descriptors) exits.
"""
import fcntl
import os
import struct
import sys

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
REALTIME_PRIORITY = 10

args = sys.argv[1:]
if "--" not in args or args.index("--") == 0 or args[-1] == "--":
    sys.exit("usage: tun-open.py NAME... -- COMMAND ARG...")
split = args.index("--")
names, command = args[:split], args[split + 1 :]
fds = []
for name in names:
    if len(name.encode()) > 15:
        sys.exit(f"tun-open: device name {name!r} is longer than 15 bytes")
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    os.set_inheritable(fd, True)
    fds.append(f"{name}={fd}")
os.environ["LINK_FDS"] = ",".join(fds)
# Real-time priority (kept across exec, and by the threads the command starts): the links delay packets as configured
# only while the emulator gets the CPU when they arrive, and the world's other processes can keep both cores busy.
# Bounded by the kernel's real-time throttling (sched_rt_runtime_us); without permission the links run as before.
try:
    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(REALTIME_PRIORITY))
    print(f"tun-open: real-time priority (SCHED_FIFO {REALTIME_PRIORITY})", file=sys.stderr, flush=True)
except OSError as err:
    print(f"tun-open: no real-time priority ({err.strerror}): the links lag when the CPU is busy", file=sys.stderr, flush=True)
os.execvp(command[0], command)
