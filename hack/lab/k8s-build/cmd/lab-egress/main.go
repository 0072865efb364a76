// lab-egress: the kube-apiservers' "cluster" egress (EgressSelectorConfiguration,
// HTTPConnect over a unix socket) for the lab. hack/lab/node.sh runs it inside the lab's
// network namespace, so apiserver -> kubelet (logs, exec, port-forward) and apiserver ->
// pod/service proxy traffic reaches the node namespaces without any address in the root
// network namespace. Only IP targets inside --allow CIDRs are dialled; names are refused
// (no DNS lookups).
package main

import (
	"bufio"
	"flag"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

func main() {
	sock := flag.String("socket", "", "unix socket to listen on")
	allow := flag.String("allow", "", "comma-separated CIDRs that may be dialled")
	flag.Parse()
	var nets []*net.IPNet
	for _, c := range strings.Split(*allow, ",") {
		if c = strings.TrimSpace(c); c == "" {
			continue
		}
		_, n, err := net.ParseCIDR(c)
		if err != nil {
			log.Fatalf("bad --allow %q: %v", c, err)
		}
		nets = append(nets, n)
	}
	if *sock == "" || len(nets) == 0 {
		log.Fatal("--socket and --allow are required")
	}
	_ = os.Remove(*sock)
	l, err := net.Listen("unix", *sock)
	if err != nil {
		log.Fatal(err)
	}
	_ = os.Chmod(*sock, 0o600)
	for {
		c, err := l.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go serve(c, nets)
	}
}

func allowed(hostport string, nets []*net.IPNet) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return false
	}
	for _, n := range nets {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

func serve(c net.Conn, nets []*net.IPNet) {
	defer c.Close()
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	if req.Method != http.MethodConnect {
		io.WriteString(c, "HTTP/1.1 405 Method Not Allowed\r\n\r\n")
		return
	}
	if !allowed(req.Host, nets) {
		log.Printf("refused CONNECT %s", req.Host)
		io.WriteString(c, "HTTP/1.1 403 Forbidden\r\n\r\n")
		return
	}
	up, err := net.DialTimeout("tcp", req.Host, 10*time.Second)
	if err != nil {
		log.Printf("CONNECT %s: %v", req.Host, err)
		io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\n\r\n")
		return
	}
	defer up.Close()
	io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, br); done <- struct{}{} }()
	go func() { io.Copy(c, up); done <- struct{}{} }()
	<-done
}
