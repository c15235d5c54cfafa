//go:build linux && cgo

package libvirt

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	golibvirt "libvirt.org/go/libvirt"
	"libvirt.org/go/libvirtxml"

	"github.com/amlsim/amlsim/hypervisor"
)

// Files of a snapshot directory.
const (
	// snapshotState is the template guest's saved memory and device state
	// (a libvirt save image).
	snapshotState = "state.save"
	// snapshotDisk is the template guest's disk at the moment it was saved,
	// a qcow2 layered on the base image. Each domain restored from the
	// snapshot gets a copy of it as its own disk; it is never written.
	snapshotDisk = "disk.qcow2"
	// cloneState is a domain's private copy of snapshotState, with its own
	// XML inside, that exists only while the domain is being restored.
	cloneState = "restore.save"
)

// seedCapacity is the size every seed disk is padded to (sparse, so it
// costs no space). A restored guest knows its seed disk's size from the
// template's boot and is not told of a change, so every seed must have one
// size; 16 MiB is far more than any seed (setup scripts and all) needs.
const seedCapacity = 16 << 20

var _ hypervisor.Snapshotter = (*Driver)(nil)

// SnapshotDir implements hypervisor.Snapshotter. Snapshots live under
// Config.SnapshotRoot, one directory per key.
func (d *Driver) SnapshotDir(vcpus, memoryMiB int, version string) (string, bool) {
	dir := filepath.Join(d.cfg.SnapshotRoot, d.snapshotKey(vcpus, memoryMiB, version))
	return dir, dirComplete(dir)
}

// snapshotKey names what a saved state depends on. The emulator's version
// fixes the machine type libvirt expands "pc" to (pc-i440fx-7.2 for QEMU
// 7.2) and the device models; the base image is known by its files' sizes
// and times, as make(1) would.
func (d *Driver) snapshotKey(vcpus, memoryMiB int, version string) string {
	h := sha256.New()
	fmt.Fprintf(h, "amlsim snapshot 1\ntype %s\nvcpus %d\nmemory %d\nguest %s\n", d.domType, vcpus, memoryMiB, version)
	img := d.cfg.Image
	for _, p := range []string{img.Disk, img.Kernel, img.Initrd} {
		if p == "" {
			continue
		}
		fi, err := os.Stat(p)
		if err == nil {
			fmt.Fprintf(h, "file %s %d %d\n", p, fi.Size(), fi.ModTime().UnixNano())
		}
	}
	fmt.Fprintf(h, "cmdline %s\n", img.Cmdline)
	// The domain amlsim defines, so that any change to it (a device, an
	// address) makes new snapshots.
	if dom, err := buildDomain(hypervisor.Spec{Name: "template", VCPUs: vcpus, MemoryMiB: memoryMiB},
		domainParams{Type: d.domType, Image: img, Dir: "/"}); err == nil {
		if doc, err := dom.Marshal(); err == nil {
			fmt.Fprintf(h, "domain %s\n", doc)
		}
	}
	if conn, err := d.connection(); err == nil {
		if v, err := conn.GetVersion(); err == nil {
			fmt.Fprintf(h, "emulator %d\n", v)
		}
		if v, err := conn.GetLibVersion(); err == nil {
			fmt.Fprintf(h, "libvirt %d\n", v)
		}
	}
	return fmt.Sprintf("%s-%dcpu-%dmib-%s", d.domType, vcpus, memoryMiB, hex.EncodeToString(h.Sum(nil))[:16])
}

// TakeSnapshot implements hypervisor.Snapshotter: the template domain is
// defined and started like any other, saved with virDomainSaveFlags (which
// stops it), and its disk moved into the snapshot next to the saved state.
// The result appears under dir in one rename.
func (d *Driver) TakeSnapshot(ctx context.Context, dir string, spec hypervisor.Spec, ready func(context.Context) error) (err error) {
	fail := func(err error) error { return fmt.Errorf("take snapshot %s: %w", filepath.Base(dir), err) }
	if len(spec.Shares) > 0 || spec.Snapshot != "" {
		return fail(fmt.Errorf("%w: a template has no shares and no snapshot", ErrInvalidSpec))
	}
	if d.testDriver {
		return fail(fmt.Errorf("%w: the test driver cannot save domains", hypervisor.ErrUnavailable))
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return fail(err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "."+filepath.Base(dir)+".tmp-")
	if err != nil {
		return fail(err)
	}
	defer func() {
		if rerr := os.RemoveAll(tmp); rerr != nil && err == nil {
			err = fail(rerr)
		}
	}()
	// Readable like the image directory it sits in.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fail(err)
	}
	// A template domain of this name is debris of a server that stopped
	// while taking this snapshot.
	if err := d.Undefine(ctx, spec.Name); err != nil && !errors.Is(err, hypervisor.ErrNotFound) {
		return fail(err)
	}
	if err := d.Define(ctx, spec); err != nil {
		return fail(err)
	}
	defer func() {
		if uerr := d.Undefine(context.WithoutCancel(ctx), spec.Name); uerr != nil && err == nil {
			err = fail(uerr)
		}
	}()
	if err := d.Start(ctx, spec.Name); err != nil {
		return fail(err)
	}
	if err := ready(ctx); err != nil {
		return fail(fmt.Errorf("template guest not ready: %w", err))
	}
	dom, _, err := d.owned(spec.Name)
	if err != nil {
		return fail(err)
	}
	defer dom.Free()
	if err := dom.SaveFlags(filepath.Join(tmp, snapshotState), "", 0); err != nil {
		return fail(fmt.Errorf("save: %w", translate(err)))
	}
	if err := moveFile(filepath.Join(d.domainDir(spec.Name), OverlayDisk), filepath.Join(tmp, snapshotDisk)); err != nil {
		return fail(err)
	}
	if err := os.Chmod(filepath.Join(tmp, snapshotDisk), 0o644); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		if dirComplete(dir) {
			return nil // another server took the same snapshot first
		}
		return fail(err)
	}
	d.pruneSnapshots(dir)
	return nil
}

// pruneSnapshots removes the other snapshots of dir's shape (made of an
// older image, QEMU or template): nothing depends on a snapshot once the
// domains restored from it run, as each has a copy of its disk.
func (d *Driver) pruneSnapshots(dir string) {
	base := filepath.Base(dir)
	shape := base[:strings.LastIndex(base, "-")+1] // "qemu-1cpu-1024mib-"
	entries, err := os.ReadDir(filepath.Dir(dir))
	if err != nil {
		return
	}
	for _, e := range entries {
		if e.IsDir() && e.Name() != base && strings.HasPrefix(e.Name(), shape) {
			if err := os.RemoveAll(filepath.Join(filepath.Dir(dir), e.Name())); err == nil {
				d.log.Info("removed an old snapshot", "snapshot", e.Name())
			}
		}
	}
}

func dirComplete(dir string) bool {
	for _, f := range []string{snapshotState, snapshotDisk} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return false
		}
	}
	return true
}

// moveFile renames src to dst, copying across file systems.
func moveFile(src, dst string) error {
	if err := os.Rename(src, dst); err == nil {
		return nil
	}
	if err := copyFile(src, dst); err != nil {
		return err
	}
	return os.Remove(src)
}

// copyFile copies src to a new file dst (mode 0600).
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	return createFile(dst, func(out *os.File) error {
		_, err := io.Copy(out, in)
		return err
	})
}

// restore starts the shut-off domain dom from the snapshot in snap: a copy
// of the saved state carrying dom's own XML (name, UUID, disks, MAC, log)
// is restored paused, the snapshot mark leaves the persistent definition
// (the live one keeps it, see finishRestore), and finishRestore lets it
// run. The copy is deleted at once: a restored domain needs it no more.
func (d *Driver) restore(conn *golibvirt.Connect, dom *golibvirt.Domain, name string, meta domainMeta, snap string) (err error) {
	doc, err := dom.GetXMLDesc(golibvirt.DOMAIN_XML_SECURE | golibvirt.DOMAIN_XML_MIGRATABLE)
	if err != nil {
		return translate(err)
	}
	var def libvirtxml.Domain
	if err := def.Unmarshal(doc); err != nil {
		return fmt.Errorf("parse domain XML: %w", err)
	}
	// The template had no shares: they are plugged in after the restore,
	// as the device list of the saved state must match the template's.
	def.Devices.Filesystems = nil
	cloneDoc, err := def.Marshal()
	if err != nil {
		return fmt.Errorf("marshal domain XML: %w", err)
	}
	state := filepath.Join(d.domainDir(name), cloneState)
	// A copy left by a server that stopped in the middle of a restore.
	if err := os.Remove(state); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := cloneSaveImage(filepath.Join(snap, snapshotState), state, cloneDoc); err != nil {
		return err
	}
	defer os.Remove(state)
	if err := conn.DomainRestoreFlags(state, "", golibvirt.DOMAIN_SAVE_PAUSED); err != nil {
		return fmt.Errorf("restore: %w", translate(err))
	}
	// From here the disk is the restored guest's: a later start must boot
	// it, never restore the snapshot over it again.
	if err := forgetSnapshot(dom, meta); err != nil {
		err = fmt.Errorf("clear the snapshot mark: %w", err)
		if derr := destroy(dom); derr != nil {
			err = errors.Join(err, fmt.Errorf("force off: %w", derr))
		}
		return err
	}
	if err := d.finishRestore(dom, meta); err != nil {
		if derr := destroy(dom); derr != nil {
			err = errors.Join(err, fmt.Errorf("force off: %w", derr))
		}
		return err
	}
	return nil
}

// finishRestore lets a domain restored paused run: it adds its port
// forwards and the shares of its definition it lacks, then resumes it. It
// can run again on a domain a stopped server left paused half way: such a
// domain is recognised by the snapshot mark its live definition (the XML
// of the save image) still carries.
func (d *Driver) finishRestore(dom *golibvirt.Domain, meta domainMeta) error {
	for _, f := range meta.rules() {
		if err := removeForward(dom, f.HostPort); err != nil {
			return err
		}
		if err := addForward(dom, f.HostPort, f.GuestPort); err != nil {
			return err
		}
	}
	shares, err := filesystems(dom, golibvirt.DOMAIN_XML_INACTIVE)
	if err != nil {
		return err
	}
	live, err := filesystems(dom, 0)
	if err != nil {
		return err
	}
	plugged := map[string]bool{}
	for _, fs := range live {
		plugged[fs.Target.Dir] = true
	}
	for _, fs := range shares {
		if plugged[fs.Target.Dir] {
			continue
		}
		x, err := fs.Marshal()
		if err != nil {
			return err
		}
		if err := dom.AttachDeviceFlags(x, golibvirt.DOMAIN_DEVICE_MODIFY_LIVE); err != nil {
			return fmt.Errorf("plug in share %s: %w", fs.Target.Dir, translate(err))
		}
	}
	if err := dom.Resume(); err != nil {
		return fmt.Errorf("resume: %w", translate(err))
	}
	return nil
}

// filesystems returns the <filesystem> devices of dom's definition: the
// persistent one with DOMAIN_XML_INACTIVE, else the live one.
func filesystems(dom *golibvirt.Domain, flags golibvirt.DomainXMLFlags) ([]libvirtxml.DomainFilesystem, error) {
	doc, err := dom.GetXMLDesc(flags)
	if err != nil {
		return nil, translate(err)
	}
	var def libvirtxml.Domain
	if err := def.Unmarshal(doc); err != nil {
		return nil, fmt.Errorf("parse domain XML: %w", err)
	}
	if def.Devices == nil {
		return nil, nil
	}
	return def.Devices.Filesystems, nil
}

// writeMeta replaces amlsim's metadata element of dom.
func writeMeta(dom *golibvirt.Domain, meta domainMeta, flags golibvirt.DomainModificationImpact) error {
	b, err := xml.Marshal(meta)
	if err != nil {
		return err
	}
	if err := dom.SetMetadata(golibvirt.DOMAIN_METADATA_ELEMENT, string(b), metadataPrefix, metadataNS, flags); err != nil {
		return translate(err)
	}
	return nil
}

// forgetSnapshot clears the domain's snapshot mark, so that its later
// starts boot: a snapshot is restored once, at the first start.
func forgetSnapshot(dom *golibvirt.Domain, meta domainMeta) error {
	meta.Snapshot = ""
	return writeMeta(dom, meta, golibvirt.DOMAIN_AFFECT_CONFIG)
}

// padSeed extends a seed image to seedCapacity with a hole.
func padSeed(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.Size() >= seedCapacity {
		return nil
	}
	return os.Truncate(path, seedCapacity)
}

// snapshotUsable says why dom cannot be restored from snap, if it cannot.
func snapshotUsable(snap, seedPath string) error {
	if !dirComplete(snap) {
		return fmt.Errorf("snapshot %s is incomplete or gone", snap)
	}
	fi, err := os.Stat(seedPath)
	if err != nil {
		return err
	}
	if fi.Size() > seedCapacity {
		return fmt.Errorf("seed of %d bytes is larger than the %d the template guest knows", fi.Size(), seedCapacity)
	}
	return nil
}
