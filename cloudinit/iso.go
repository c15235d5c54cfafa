package cloudinit

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/iso9660"
)

// ISO renders the seed and packs meta-data, user-data and network-config into
// an ISO9660 image labelled "cidata", with Rock Ridge and Joliet names so
// every reader sees the file names exactly. go-diskfs stages the files in a
// temporary directory, which is removed before ISO returns.
func (c Config) ISO() ([]byte, error) {
	md, err := c.MetaData()
	if err != nil {
		return nil, err
	}
	ud, err := c.UserData()
	if err != nil {
		return nil, err
	}
	return writeISO(VolumeLabel, []isoEntry{
		{MetaDataFile, md},
		{UserDataFile, ud},
		{NetworkConfigFile, c.NetworkConfig()},
	})
}

// isoBlockSize is the logical block size of the image (and a CD-ROM's sector).
const isoBlockSize = 2048

type isoEntry struct {
	name string
	data []byte
}

// writeISO builds an ISO9660 image holding files in its root directory.
func writeISO(label string, files []isoEntry) ([]byte, error) {
	dir, err := os.MkdirTemp("", "cloudinit-iso-")
	if err != nil {
		return nil, fmt.Errorf("cloudinit: ISO: %w", err)
	}
	defer os.RemoveAll(dir)

	workspace := filepath.Join(dir, "workspace")
	if err := os.Mkdir(workspace, 0o755); err != nil {
		return nil, fmt.Errorf("cloudinit: ISO: %w", err)
	}
	// The workspace's modes become the Rock Ridge modes of the volume;
	// set them explicitly rather than inherit the umask.
	if err := os.Chmod(workspace, 0o755); err != nil {
		return nil, fmt.Errorf("cloudinit: ISO: %w", err)
	}
	imagePath := filepath.Join(dir, "seed.iso")
	img, err := os.OpenFile(imagePath, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("cloudinit: ISO: %w", err)
	}
	defer img.Close()

	fs, err := iso9660.Create(file.New(img, false), 0, 0, isoBlockSize, workspace)
	if err != nil {
		return nil, fmt.Errorf("cloudinit: ISO: %w", err)
	}
	for _, f := range files {
		w, err := fs.OpenFile("/"+f.name, os.O_CREATE|os.O_RDWR|os.O_TRUNC)
		if err != nil {
			return nil, fmt.Errorf("cloudinit: ISO: %s: %w", f.name, err)
		}
		_, werr := w.Write(f.data)
		cerr := w.Close()
		if err := errors.Join(werr, cerr, os.Chmod(filepath.Join(workspace, f.name), 0o644)); err != nil {
			return nil, fmt.Errorf("cloudinit: ISO: writing %s: %w", f.name, err)
		}
	}
	if err := fs.Finalize(iso9660.FinalizeOptions{
		RockRidge:        true,
		Joliet:           true,
		VolumeIdentifier: label,
	}); err != nil {
		return nil, fmt.Errorf("cloudinit: ISO: finalize: %w", err)
	}
	if err := img.Close(); err != nil {
		return nil, fmt.Errorf("cloudinit: ISO: %w", err)
	}
	out, err := os.ReadFile(imagePath)
	if err != nil {
		return nil, fmt.Errorf("cloudinit: ISO: %w", err)
	}
	return padToVolumeSize(out)
}

// padToVolumeSize zero-fills the image up to the volume size its primary
// volume descriptor declares. go-diskfs stops writing at the last byte of the
// last file, which leaves the image short of a whole 2 KiB block: a CD-ROM
// (QEMU's, or a loop device) only exposes whole blocks, so the tail of the
// last file would be unreadable in the guest.
func padToVolumeSize(img []byte) ([]byte, error) {
	const pvdOffset = 16 * isoBlockSize
	if len(img) < pvdOffset+isoBlockSize || img[pvdOffset] != 1 || string(img[pvdOffset+1:pvdOffset+6]) != "CD001" {
		return nil, fmt.Errorf("cloudinit: ISO: no primary volume descriptor in the image")
	}
	blocks := int64(binary.LittleEndian.Uint32(img[pvdOffset+80:]))
	blockSize := int64(binary.LittleEndian.Uint16(img[pvdOffset+128:]))
	size := blocks * blockSize
	if size < int64(len(img)) {
		size = int64(len(img))
	}
	if rem := size % isoBlockSize; rem != 0 {
		size += isoBlockSize - rem
	}
	if size > int64(len(img)) {
		img = append(img, make([]byte, size-int64(len(img)))...)
	}
	return img, nil
}
