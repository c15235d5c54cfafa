//go:build linux && cgo

package libvirt

import "net"

type loopbackListener struct {
	net.Listener
	port int
}

func listenLoopback() (*loopbackListener, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	return &loopbackListener{Listener: l, port: l.Addr().(*net.TCPAddr).Port}, nil
}
