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
os.execvp(command[0], command)
