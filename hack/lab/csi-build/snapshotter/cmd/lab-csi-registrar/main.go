// lab-csi-registrar: registers a CSI driver with the kubelet, a stand-in for kubernetes-csi's
// node-driver-registrar (its module is not served by the Go module proxy reachable here; see
// hack/lab/README.md, "CSI"). Same flags and same protocol: it asks the driver for its name
// (CSI GetPluginInfo on --csi-address), then serves the kubelet's plugin-registration API
// (k8s.io/kubelet/pkg/apis/pluginregistration/v1: GetInfo, NotifyRegistrationStatus) on
// <--plugin-registration-path>/<driver>-reg.sock, which the kubelet's plugin watcher finds;
// the kubelet then calls the driver's NodeGetInfo and records it in the CSINode object.
// On SIGTERM the socket is removed, so the kubelet deregisters the driver.
package main

import (
	"context"
	"flag"
	"log"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

type registrar struct {
	registerapi.UnimplementedRegistrationServer
	driver, endpoint string
}

func (r *registrar) GetInfo(context.Context, *registerapi.InfoRequest) (*registerapi.PluginInfo, error) {
	return &registerapi.PluginInfo{Type: registerapi.CSIPlugin, Name: r.driver, Endpoint: r.endpoint,
		SupportedVersions: []string{"1.0.0"}}, nil
}

func (r *registrar) NotifyRegistrationStatus(_ context.Context, s *registerapi.RegistrationStatus) (*registerapi.RegistrationStatusResponse, error) {
	if s.PluginRegistered {
		log.Printf("kubelet registered driver %s", r.driver)
	} else {
		log.Printf("ERROR: kubelet did not register driver %s: %s", r.driver, s.Error)
	}
	return &registerapi.RegistrationStatusResponse{}, nil
}

func main() {
	csiAddress := flag.String("csi-address", "", "the driver's CSI socket (path)")
	kubeletPath := flag.String("kubelet-registration-path", "", "the driver's CSI socket as the kubelet sees it")
	regDir := flag.String("plugin-registration-path", "/registration", "the kubelet's plugins_registry directory")
	flag.Parse()
	if *csiAddress == "" || *kubeletPath == "" {
		log.Fatal("--csi-address and --kubelet-registration-path are required")
	}
	conn, err := grpc.NewClient("unix://"+*csiAddress, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	var name string
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(time.Second) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		info, err := csi.NewIdentityClient(conn).GetPluginInfo(ctx, &csi.GetPluginInfoRequest{})
		cancel()
		if err == nil {
			name = info.GetName()
			break
		}
		if time.Now().After(deadline) {
			log.Fatalf("driver at %s did not answer GetPluginInfo: %v", *csiAddress, err)
		}
	}
	conn.Close()
	sock := filepath.Join(*regDir, name+"-reg.sock")
	if err := os.MkdirAll(*regDir, 0o750); err != nil {
		log.Fatal(err)
	}
	_ = os.Remove(sock)
	l, err := net.Listen("unix", sock)
	if err != nil {
		log.Fatal(err)
	}
	srv := grpc.NewServer()
	registerapi.RegisterRegistrationServer(srv, &registrar{driver: name, endpoint: *kubeletPath})
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() { <-sig; srv.Stop() }()
	log.Printf("lab-csi-registrar: driver %s (endpoint %s), registration socket %s", name, *kubeletPath, sock)
	if err := srv.Serve(l); err != nil {
		log.Print(err)
	}
	_ = os.Remove(sock)
}
