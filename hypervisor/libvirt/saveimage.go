//go:build linux && cgo

package libvirt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// A libvirt QEMU save image (virsh save, virDomainSaveFlags) is a fixed
// header, then data_len bytes holding the domain XML (NUL-terminated), an
// optional cookie (NUL-terminated) and zero padding, then QEMU's migration
// stream. The layout is libvirt's ABI (src/qemu/qemu_saveimage.h, "this
// magic string is ABI, so it can't be changed"):
//
//	char magic[16]; uint32 version, data_len, was_running, compressed,
//	cookieOffset, unused[14]
//
// in host byte order. libvirt pads the data by 64 KiB precisely so that the
// XML can be edited in place ("allows the user to edit the XML in a saved
// state image and have the new XML be larger", qemu_saveimage.c).
const (
	saveMagic      = "LibvirtQemudSave"
	saveHeaderSize = 16 + 4*5 + 4*14
	saveVersion    = 2
)

type saveHeader struct {
	Magic      [16]byte
	Version    uint32
	DataLen    uint32
	WasRunning uint32
	Compressed uint32
	CookieOff  uint32
	Unused     [14]uint32
}

// errSaveImage marks a file that is not a save image amlsim can rewrite.
var errSaveImage = errors.New("not a libvirt QEMU save image (version 2, uncompressed)")

func readSaveHeader(r io.Reader) (h saveHeader, xmlDoc string, cookie []byte, err error) {
	if err := binary.Read(r, binary.LittleEndian, &h); err != nil {
		return h, "", nil, fmt.Errorf("%w: %w", errSaveImage, err)
	}
	if string(h.Magic[:]) != saveMagic || h.Version != saveVersion || h.Compressed != 0 {
		return h, "", nil, fmt.Errorf("%w: magic %q, version %d, compressed %d", errSaveImage, h.Magic[:], h.Version, h.Compressed)
	}
	data := make([]byte, h.DataLen)
	if _, err := io.ReadFull(r, data); err != nil {
		return h, "", nil, fmt.Errorf("%w: data: %w", errSaveImage, err)
	}
	end := bytes.IndexByte(data, 0)
	if end < 0 {
		return h, "", nil, fmt.Errorf("%w: XML not terminated", errSaveImage)
	}
	xmlDoc = string(data[:end])
	if h.CookieOff != 0 {
		if int(h.CookieOff) >= len(data) {
			return h, "", nil, fmt.Errorf("%w: cookie offset %d beyond data", errSaveImage, h.CookieOff)
		}
		c := data[h.CookieOff:]
		if i := bytes.IndexByte(c, 0); i >= 0 {
			c = c[:i]
		}
		cookie = c
	}
	return h, xmlDoc, cookie, nil
}

// cloneSaveImage writes to dst a copy of the save image src whose embedded
// domain XML is xmlDoc, keeping the cookie and the migration stream. The
// data area keeps its length, so the stream stays where QEMU's loader
// expects it; an XML that does not fit in it is an error. Restoring the
// copy without a replacement XML starts the domain xmlDoc describes, which
// is how one saved guest becomes many: libvirt checks a replacement XML for
// ABI stability and refuses a new name or UUID, but trusts the image's own.
func cloneSaveImage(src, dst, xmlDoc string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	h, _, cookie, err := readSaveHeader(in)
	if err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	need := len(xmlDoc) + 1
	if cookie != nil {
		need += len(cookie) + 1
	}
	if need > int(h.DataLen) {
		return fmt.Errorf("clone save image: XML of %d bytes does not fit in the image's %d", need, h.DataLen)
	}
	data := make([]byte, h.DataLen)
	copy(data, xmlDoc)
	h.CookieOff = 0
	if cookie != nil {
		h.CookieOff = uint32(len(xmlDoc) + 1)
		copy(data[h.CookieOff:], cookie)
	}
	return createFile(dst, func(out *os.File) error {
		if err := binary.Write(out, binary.LittleEndian, &h); err != nil {
			return err
		}
		if _, err := out.Write(data); err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			return fmt.Errorf("clone save image: copy stream: %w", err)
		}
		return nil
	})
}

// createFile creates dst (mode 0600, which must not exist) and fills it;
// on any failure dst is removed. io.Copy between two files, as fill
// functions do, uses copy_file_range: a reflink where the file system has
// them, an in-kernel copy elsewhere.
func createFile(dst string, fill func(*os.File) error) (err error) {
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(dst)
		}
	}()
	return fill(out)
}
