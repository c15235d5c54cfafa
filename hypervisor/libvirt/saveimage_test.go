//go:build linux && cgo

package libvirt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeSaveImage writes a save image laid out as libvirt 9.0 writes one
// (qemu_saveimage.c: header, XML and NUL, cookie and NUL, zeros up to
// data_len, then the stream).
func writeSaveImage(t *testing.T, path, xmlDoc, cookie string, dataLen int, stream []byte) {
	t.Helper()
	h := saveHeader{Version: saveVersion, DataLen: uint32(dataLen), WasRunning: 1, CookieOff: uint32(len(xmlDoc) + 1)}
	copy(h.Magic[:], saveMagic)
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, &h)
	data := make([]byte, dataLen)
	copy(data, xmlDoc)
	copy(data[len(xmlDoc)+1:], cookie)
	b.Write(data)
	b.Write(stream)
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// saveImageXML returns the domain XML embedded in the save image at path.
func saveImageXML(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	_, xmlDoc, _, err := readSaveHeader(f)
	return xmlDoc, err
}

func TestCloneSaveImage(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "template.save")
	stream := bytes.Repeat([]byte("QEVM-stream-"), 1000)
	cookie := "<qemu-migration><cpu/></qemu-migration>"
	writeSaveImage(t, src, "<domain><name>template</name></domain>", cookie, 4096, stream)
	if got, err := saveImageXML(src); err != nil || got != "<domain><name>template</name></domain>" {
		t.Fatalf("saveImageXML = %q, %v", got, err)
	}

	clone := "<domain><name>instance-with-a-longer-name</name><uuid>1</uuid></domain>"
	dst := filepath.Join(dir, "clone.save")
	if err := cloneSaveImage(src, dst, clone); err != nil {
		t.Fatalf("cloneSaveImage = %v", err)
	}
	f, err := os.Open(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h, gotXML, gotCookie, err := readSaveHeader(f)
	if err != nil {
		t.Fatalf("read clone: %v", err)
	}
	if gotXML != clone || string(gotCookie) != cookie {
		t.Errorf("clone XML %q cookie %q; want %q, %q", gotXML, gotCookie, clone, cookie)
	}
	if h.DataLen != 4096 || h.WasRunning != 1 || h.CookieOff != uint32(len(clone)+1) {
		t.Errorf("clone header = %+v", h)
	}
	rest, _ := os.ReadFile(dst)
	if !bytes.Equal(rest[saveHeaderSize+4096:], stream) {
		t.Errorf("the migration stream moved or changed")
	}

	// An XML the data area cannot hold is refused, and nothing is left.
	big := filepath.Join(dir, "big.save")
	if err := cloneSaveImage(src, big, "<domain>"+strings.Repeat("x", 5000)+"</domain>"); err == nil {
		t.Errorf("cloneSaveImage of an XML larger than the data area succeeded")
	}
	if _, err := os.Stat(big); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused clone left %s: %v", big, err)
	}
	// Anything but a libvirt save image is refused.
	if err := os.WriteFile(filepath.Join(dir, "junk"), []byte("not a save image at all, no"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := saveImageXML(filepath.Join(dir, "junk")); !errors.Is(err, errSaveImage) {
		t.Errorf("saveImageXML(junk) = %v, want errSaveImage", err)
	}
}
