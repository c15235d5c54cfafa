#!/usr/bin/python3
# amlsim-reidentify: turns a guest restored from amlsim's snapshot into the
# compute instance whose NoCloud seed is attached now.
#
# amlsim boots one template guest per VM shape, starts this program in it and
# saves the guest's memory once this program says "ready": cloud-init's Python
# is loaded by then, and under TCG loading it costs more than the work
# itself (`import cloudinit.cmd.main` alone: 6.5 s). Every new instance
# starts from that saved state with its own seed on the seed disk. This
# program watches the seed disk (a few times a second) and, once another
# seed is there:
#   - sets the clock from the RTC (the host's time), mixes bytes of the
#     virtio RNG (the host's /dev/urandom) into the kernel pool, writes a new
#     machine-id and random seed, and moves the NIC to the MAC the seed's
#     network-config names;
#   - serves the instance's SSH host keys, authorized keys and hostname read
#     from the seed (sshd reads host keys at each connection) and says so on
#     the serial console ("amlsim-reidentify: identity INSTANCE-ID"): amlsim
#     then sees the instance answer SSH as itself, the sign that it is up;
#   - runs `cloud-init clean` and cloud-init's four stages from the seed, as
#     a first boot would, so every per-instance module runs: hostname, users
#     and keys, SSH host keys, write_files, the per-boot setup-script runner.
#     Each stage runs in a fork of this process, with its modules loaded.
#
# Progress goes to STATUS, one word and details: "ready", "started",
# "identity", "done", or "failed <reason>". With --now it does the same at
# once (amlsim runs that over SSH with the template's key when a restored
# guest shows no sign of it).
import hashlib
import os
import shutil
import subprocess
import sys
import time

RUN = "/run/amlsim"
STATUS = RUN + "/reidentify.status"
# The same lines as the journal gets: reidentify restarts journald, and
# what the unit wrote before that is not in the journal of the instance.
LOG = RUN + "/reidentify.log"
TEMPLATE_KEYS = "/run/amlsim-template"
# The image's cloud-init server (fast create needs amlsim's default image).
SERVER = "/usr/lib/amlsim/cloud-init-server"
# The seed disk (amlsim attaches it as the second virtio disk).
SEED = "/dev/vdb"
BLKFLSBUF = 0x1261  # linux/fs.h: flush a block device's buffer cache
RNDRESEEDCRNG = 0x5207  # linux/random.h: _IO('R', 0x07)
# What went wrong after the identity was served; reported in STATUS.
FAILED = []
# The image's cloud-init server, loaded as a module by preload().
server = None


T0 = time.monotonic()
CPU0 = 0.0


def cpu():
    """CPU seconds this process and the stages it ran have used."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def log(msg):
    """Timings of each step (since the new seed was seen: wall clock, CPU),
    for the journal (amlsim-reidentify.service) and LOG."""
    line = "%.2fs cpu %.2fs %s" % (time.monotonic() - T0, cpu() - CPU0, msg)
    print(line, flush=True)
    with open(LOG, "a") as f:
        f.write(line + "\n")


def status(word):
    tmp = STATUS + ".tmp"
    with open(tmp, "w") as f:
        f.write(word + "\n")
    os.replace(tmp, STATUS)


def load_server():
    """The image's cloud-init server (fixtures/image/cloud-init-server), as
    a module: what it imports before the stages, its YAML memo and its stage
    runner serve here too."""
    import importlib.machinery
    import importlib.util

    loader = importlib.machinery.SourceFileLoader("amlsim_cloud_init_server", SERVER)
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
    loader.exec_module(module)
    return module


def preload():
    global server
    server = load_server()
    server.preload()
    server.memoize_yaml()
    import cloudinit.cmd.clean  # noqa: F401


def announce(msg):
    """Tells the host, through the kernel log on the serial console, what
    only SSH could tell it otherwise: amlsim waits for this line instead of
    trying SSH again and again, each try a handshake that takes the vCPU
    from this program."""
    try:
        with open("/dev/kmsg", "w") as f:
            f.write("<5>amlsim-reidentify: %s\n" % msg)
    except OSError:
        pass  # amlsim tries SSH every few seconds all the same


def run(*argv):
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def stage(*args):
    """Runs `cloud-init ARGS` in a fork of this warm process."""
    code = server.stage(args)
    if code != 0:
        # As systemd runs the next stage after a failed one, so does this.
        FAILED.append("cloud-init %s exited %d" % (" ".join(args), code))


def first_nic():
    """The first Ethernet interface, by name (the guest has one)."""
    for name in sorted(os.listdir("/sys/class/net")):
        if name != "lo" and os.path.exists("/sys/class/net/%s/device" % name):
            return name
    raise RuntimeError("no network interface")


def read_seed():
    """meta-data, user-data and network-config of the seed attached now."""
    import tempfile

    import yaml

    # libyaml's parser where python3-yaml has it: a fifth of the time of
    # the pure-Python one for these files (0.04 s against 0.19 s here).
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with tempfile.TemporaryDirectory() as mnt:
        run("mount", "-o", "ro", "-t", "iso9660", SEED, mnt)
        try:
            with open(os.path.join(mnt, "meta-data")) as f:
                meta = yaml.load(f, Loader=loader)
            with open(os.path.join(mnt, "user-data")) as f:
                user = yaml.load(f, Loader=loader)
            network = None
            if os.path.exists(os.path.join(mnt, "network-config")):
                with open(os.path.join(mnt, "network-config")) as f:
                    network = yaml.load(f, Loader=loader)
        finally:
            run("umount", mnt)
    return meta or {}, user or {}, network


def write(path, content, mode, uid=0, gid=0):
    tmp = path + ".amlsim-tmp"
    with open(tmp, "w") as f:
        f.write(content)
    os.chown(tmp, uid, gid)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def early_identity(meta, user):
    """Serves the instance's SSH host keys, authorized keys and hostname,
    read from its seed, before cloud-init's stages run (and write the same
    again): the instance is reachable as itself in a second or two instead
    of after cloud-init's init stage (17 s under TCG)."""
    import glob
    import pwd
    import socket

    keys = user.get("ssh_keys") or {}
    if user.get("ssh_deletekeys") and keys:
        for path in glob.glob("/etc/ssh/ssh_host_*key*"):
            os.unlink(path)
    for name, value in keys.items():
        kind, _, part = name.rpartition("_")
        path = "/etc/ssh/ssh_host_%s_key" % kind
        if part == "private":
            write(path, value, 0o600)
        elif part == "public":
            write(path + ".pub", value.strip() + "\n", 0o644)
    for u in user.get("users") or []:
        if not isinstance(u, dict) or not u.get("ssh_authorized_keys"):
            continue
        pw = pwd.getpwnam(u["name"])
        ssh_dir = os.path.join(pw.pw_dir, ".ssh")
        os.makedirs(ssh_dir, mode=0o700, exist_ok=True)
        write(os.path.join(ssh_dir, "authorized_keys"), "".join(k.strip() + "\n" for k in u["ssh_authorized_keys"]),
              0o600, pw.pw_uid, pw.pw_gid)
    host = meta.get("local-hostname") or user.get("hostname")
    if host:
        socket.sethostname(host)
        write("/etc/hostname", host + "\n", 0o644)
        if user.get("manage_etc_hosts"):
            fqdn = user.get("fqdn") or host
            write("/etc/hosts", "127.0.1.1 %s %s\n127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n" % (fqdn, host), 0o644)
    # No restart: sshd re-executes itself for each connection, and the new
    # process reads the host keys (seen here with OpenSSH 9.2).


def repair_host_keys():
    """ssh.service's ExecStartPre in a clone (--repair-host-keys): a clone
    forced off while cloud-init deleted and re-created its SSH host keys
    (before they reached the disk) boots with them missing or empty, and
    sshd refuses to start. They are written again from the seed, which is
    the instance's own in any boot."""
    _, user, _ = read_seed()
    repaired = []
    for name, value in (user.get("ssh_keys") or {}).items():
        kind, _, part = name.rpartition("_")
        path = "/etc/ssh/ssh_host_%s_key" % kind
        if part == "private":
            mode = 0o600
        elif part == "public":
            path, value, mode = path + ".pub", value.strip() + "\n", 0o644
        else:
            continue
        if not os.path.exists(path) or os.path.getsize(path) == 0:
            write(path, value, mode)
            repaired.append(path)
    if repaired:
        os.sync()
        print("amlsim-reidentify: host keys written again from the seed: %s" % " ".join(repaired), flush=True)


def reseed():
    """Gives the kernel's random generator state no other clone has.

    Every clone resumes with the template's generator state: without this,
    two clones draw the same "random" bytes (seen: the same machine-id).
    Bytes written to /dev/urandom only go into the input pool; the
    RNDRESEEDCRNG ioctl (linux/random.h, Linux 4.17+) makes the generator
    take them at once."""
    import fcntl

    try:
        with open("/dev/hwrng", "rb") as rng:
            fresh = rng.read(64)
    except OSError:
        fresh = b""  # no virtio RNG
    fresh += str(time.time_ns()).encode()
    with open("/dev/urandom", "wb") as pool:
        pool.write(fresh)
        pool.flush()
        fcntl.ioctl(pool.fileno(), RNDRESEEDCRNG)
    # Python's own generator, loaded in the template, and inherited by the
    # forks that run cloud-init.
    import random

    random.seed()


def seed_fingerprint():
    """A hash of the start of the seed disk, read past the page cache."""
    import fcntl

    fd = os.open(SEED, os.O_RDONLY)
    try:
        fcntl.ioctl(fd, BLKFLSBUF, 0)
        return hashlib.sha256(os.pread(fd, 1 << 18, 0)).digest()
    finally:
        os.close(fd)


def set_mac(nic, mac):
    """Gives nic the address mac, and tells the network so with a
    gratuitous ARP (arp_notify, for this change only). QEMU's user-mode
    network keeps sending to the old MAC until the guest sends an ARP: the
    host's first connection to the instance would hang until cloud-init
    brings the network up again."""
    notify = "/proc/sys/net/ipv4/conf/%s/arp_notify" % nic
    with open(notify) as f:
        old = f.read()
    with open(notify, "w") as f:
        f.write("1")
    try:
        run("ip", "link", "set", "dev", nic, "address", mac)
    finally:
        with open(notify, "w") as f:
            f.write(old)


def teach_gateway(nic):
    """Makes sure QEMU's user-mode network knows the guest's new MAC.
    slirp learns it from the gratuitous ARP of the change (libslirp's
    arp_input adds the sender of a request whose target is its sender);
    if that one frame is lost, slirp keeps sending to the template's MAC,
    which virtio-net drops once the guest has changed its filter, and the
    host's connections to the clone go unanswered (virtio RX still, slirp
    in SYN_SENT: issue 12's lost clone). An ARP request for the gateway
    is a second chance whose reply proves slirp saw it (it also adds the
    sender of a request for its own address): the guest's neighbours are
    flushed, a datagram to the gateway makes the kernel ask, and the
    gateway's entry must then resolve. After a reconfiguration the route
    may take a few seconds to come back: it waits up to 10 s for it."""
    import socket
    for _ in range(50):
        out = subprocess.run(["ip", "-4", "route", "show", "default", "dev", nic],
                             check=True, capture_output=True, text=True).stdout.split()
        if "via" in out:
            break
        time.sleep(0.2)
    else:
        raise RuntimeError("no default route on %s to teach the gateway the MAC" % nic)
    gateway = out[out.index("via") + 1]
    for _ in range(5):
        run("ip", "neigh", "flush", "dev", nic)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b"amlsim", (gateway, 9))  # discard: only the ARP matters
        for _ in range(10):
            time.sleep(0.1)
            neigh = subprocess.run(["ip", "neigh", "show", gateway, "dev", nic],
                                   check=True, capture_output=True, text=True).stdout
            if "lladdr" in neigh:
                return
    raise RuntimeError("the gateway %s never answered ARP on %s" % (gateway, nic))


def seed_mac(network):
    for eth in ((network or {}).get("ethernets") or {}).values():
        mac = ((eth or {}).get("match") or {}).get("macaddress")
        if mac:
            return mac
    return None


def reidentify():
    with open("/sys/class/rtc/rtc0/since_epoch") as f:
        time.clock_settime(time.CLOCK_REALTIME, float(f.read()))
    reseed()
    with open("/var/lib/systemd/random-seed", "wb") as f:
        f.write(os.urandom(512))
    with open("/etc/machine-id", "w") as f:
        f.write(os.urandom(16).hex() + "\n")
    log("clock, random seed, machine-id")
    meta, user, network = read_seed()
    log("seed read")
    # The template had a static address and no DHCP lease, so QEMU's DHCP
    # server gives this MAC the same address when networkd asks.
    nic = first_nic()
    mac = seed_mac(network)
    if mac:
        set_mac(nic, mac)
        try:
            teach_gateway(nic)
        except Exception as e:
            FAILED.append("teach the gateway: %s" % e)
    log("MAC")
    early_identity(meta, user)
    os.sync()
    status("identity")
    announce("identity %s" % meta.get("instance-id", ""))
    log("identity: sshd serves the instance's host key")
    shutil.rmtree(TEMPLATE_KEYS, ignore_errors=True)

    from cloudinit.cmd import clean

    steps = [
        ("cloud-init clean", lambda: clean.remove_artifacts(remove_logs=True)),
        ("cloud-init init --local", lambda: stage("init", "--local")),
        ("cloud-init init", lambda: stage("init")),
        ("journald", lambda: run("systemctl", "restart", "systemd-journald.service")),
        # The network is left as the template had it: its static address,
        # gateway and DNS are those QEMU's DHCP server gives (10.0.2.15/24,
        # 10.0.2.2, 10.0.2.3), and cloud-init's new config (DHCP on the
        # instance's MAC) takes effect at the next boot. Applying it now
        # (networkctl reload and reconfigure) dropped the address for about
        # a second, measured by a banner probe every 0.25 s, and an SSH
        # connection opened then hung: a flake of the fast-create e2e.
        ("cloud-init modules --mode config", lambda: stage("modules", "--mode", "config")),
        ("cloud-init modules --mode final", lambda: stage("modules", "--mode", "final")),
        ("jupyter", lambda: run("systemctl", "start", "--no-block", "amlsim-jupyter.service")),
    ]
    for name, step in steps:
        try:
            step()
        except Exception as e:
            FAILED.append("%s: %s %s" % (name, e, (getattr(e, "stderr", b"") or b"").decode(errors="replace").strip()))
        # What each stage wrote reaches the disk before the next: a clone
        # forced off meanwhile boots with a consistent cloud-init state.
        os.sync()
        log(name)


def main():
    if sys.argv[1:] == ["--repair-host-keys"]:
        repair_host_keys()
        return 0
    os.makedirs(RUN, mode=0o700, exist_ok=True)
    preload()
    if sys.argv[1:] != ["--now"]:
        first = seed_fingerprint()
        status("ready")
        while seed_fingerprint() == first:
            time.sleep(0.2)
    global T0, CPU0
    T0, CPU0 = time.monotonic(), cpu()
    status("started")
    log("started")
    try:
        reidentify()
    except Exception as e:
        detail = getattr(e, "stderr", b"") or b""
        status("failed %s %s" % (e, detail.decode(errors="replace").strip()))
        return 1
    status(" ".join(["done"] + FAILED))
    return 0


if __name__ == "__main__":
    sys.exit(main())
