// lab-csi-hostpath: the lab's CSI driver, a stand-in for kubernetes-csi's csi-driver-host-path
// (whose module, like node-driver-registrar's, the Go module proxy reachable here does not
// serve: every version answers 403 "This module version is not available"; see
// hack/lab/README.md, "CSI").
//
// One process per lab node serves the CSI Identity, Controller, GroupController and Node services on one unix
// socket (as hostpathplugin does in its single-node deployment); the real kubernetes-csi
// sidecars (external-provisioner, external-snapshotter's csi-snapshotter) and the kubelet's
// CSI volume plugin talk to it over that socket.
//
// Storage model (like a block-storage array, not like a directory hostpath):
//   - every volume is a sparse image file of exactly the requested size under --data-dir,
//     attached to a loop device at NodeStageVolume;
//   - volumeMode Filesystem: the image holds an ext4 filesystem (mkfs.ext4 at CreateVolume),
//     mounted at the staging path and bind-mounted into each pod's target path; a full
//     volume fails writes with ENOSPC;
//   - volumeMode Block: the loop device itself is bind-mounted onto the pod's device path;
//   - CreateSnapshot copies the image (holes kept) while the filesystem is frozen (FIFREEZE
//     on the staging mount, so the copy is a point-in-time, crash-consistent image even with
//     a writer running); a Block volume's image is copied without a freeze;
//   - CreateVolume from a snapshot copies the snapshot's image (grown with resize2fs when the
//     request is larger); a clone (dataSource = PVC) copies the source image like a snapshot.
//   - CreateVolumeGroupSnapshot (CSI GroupController, VolumeGroupSnapshot) freezes all source
//     filesystems at once, copies each image, then thaws them: one point in time across volumes.
//
// Tools used from the host: mkfs.ext4, e2fsck, resize2fs (e2fsprogs), losetup, mount, umount
// (util-linux, mount). Only files under --data-dir and mounts/loop devices of them are touched.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

const (
	version      = "0.1.0"
	mib          = int64(1) << 20
	minFsBytes   = 16 * mib
	defaultBytes = 64 * mib
	// FIFREEZE / FITHAW: _IOWR('X', 119, int) / _IOWR('X', 120, int) (linux/fs.h)
	fiFreeze = 0xC0045877
	fiThaw   = 0xC0045878
)

// volume / snapshot metadata, one JSON file each next to its image
type volume struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Bytes   int64  `json:"bytes"`
	Block   bool   `json:"block"`
	Staged  string `json:"staged,omitempty"` // staging path while staged on this node
	Source  string `json:"source,omitempty"` // snapshot or volume id it was made from
	Created int64  `json:"created"`
}

type snapshot struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Source  string `json:"source"`
	Bytes   int64  `json:"bytes"`
	Block   bool   `json:"block"`
	Created int64  `json:"created"` // unix nanoseconds
	Group   string `json:"group,omitempty"`
}

// group: a VolumeGroupSnapshot, its member snapshots taken while all sources were quiesced together
type group struct {
	ID        string   `json:"id"`
	Name      string   `json:"name"`
	Snapshots []string `json:"snapshots"`
	Created   int64    `json:"created"`
}

type driver struct {
	csi.UnimplementedIdentityServer
	csi.UnimplementedControllerServer
	csi.UnimplementedNodeServer
	csi.UnimplementedGroupControllerServer
	name, nodeID, dataDir string
	mu                    sync.Mutex // one operation at a time: simple and enough for a lab
}

func main() {
	endpoint := flag.String("endpoint", "", "unix socket path to serve CSI on")
	name := flag.String("drivername", "lab-hostpath.csi.ferry.local", "CSI driver name")
	nodeID := flag.String("nodeid", "", "node id (the Kubernetes node name)")
	dataDir := flag.String("data-dir", "", "directory for volume and snapshot images")
	flag.Parse()
	if *endpoint == "" || *nodeID == "" || *dataDir == "" {
		log.Fatal("--endpoint, --nodeid and --data-dir are required")
	}
	d := &driver{name: *name, nodeID: *nodeID, dataDir: *dataDir}
	for _, sub := range []string{"volumes", "snapshots", "groups"} {
		if err := os.MkdirAll(filepath.Join(*dataDir, sub), 0o700); err != nil {
			log.Fatal(err)
		}
	}
	d.thawAll()
	sock := strings.TrimPrefix(*endpoint, "unix://")
	if err := os.MkdirAll(filepath.Dir(sock), 0o750); err != nil {
		log.Fatal(err)
	}
	_ = os.Remove(sock)
	l, err := net.Listen("unix", sock)
	if err != nil {
		log.Fatal(err)
	}
	srv := grpc.NewServer(grpc.UnaryInterceptor(logCalls))
	csi.RegisterIdentityServer(srv, d)
	csi.RegisterControllerServer(srv, d)
	csi.RegisterNodeServer(srv, d)
	csi.RegisterGroupControllerServer(srv, d)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() { <-sig; srv.GracefulStop() }()
	log.Printf("lab-csi-hostpath %s: driver %s, node %s, data %s, serving on %s", version, d.name, d.nodeID, d.dataDir, sock)
	if err := srv.Serve(l); err != nil {
		log.Fatal(err)
	}
	_ = os.Remove(sock)
}

func logCalls(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	t := time.Now()
	resp, err := h(ctx, req)
	m := info.FullMethod[strings.LastIndex(info.FullMethod, "/")+1:]
	if m != "Probe" && m != "NodeGetCapabilities" && m != "NodeGetVolumeStats" {
		if err != nil {
			log.Printf("%s (%s): error: %v", m, time.Since(t).Round(time.Millisecond), err)
		} else {
			log.Printf("%s (%s): ok", m, time.Since(t).Round(time.Millisecond))
		}
	}
	return resp, err
}

// ------------------------------------------------------------------ identity ----

func (d *driver) GetPluginInfo(context.Context, *csi.GetPluginInfoRequest) (*csi.GetPluginInfoResponse, error) {
	return &csi.GetPluginInfoResponse{Name: d.name, VendorVersion: version}, nil
}

func (d *driver) GetPluginCapabilities(context.Context, *csi.GetPluginCapabilitiesRequest) (*csi.GetPluginCapabilitiesResponse, error) {
	var caps []*csi.PluginCapability
	for _, t := range []csi.PluginCapability_Service_Type{
		csi.PluginCapability_Service_CONTROLLER_SERVICE,
		csi.PluginCapability_Service_GROUP_CONTROLLER_SERVICE,
	} {
		caps = append(caps, &csi.PluginCapability{Type: &csi.PluginCapability_Service_{Service: &csi.PluginCapability_Service{Type: t}}})
	}
	return &csi.GetPluginCapabilitiesResponse{Capabilities: caps}, nil
}

func (d *driver) Probe(context.Context, *csi.ProbeRequest) (*csi.ProbeResponse, error) {
	return &csi.ProbeResponse{}, nil
}

// ---------------------------------------------------------------- metadata ----

func (d *driver) volPath(id, ext string) string { return filepath.Join(d.dataDir, "volumes", id+ext) }
func (d *driver) snapPath(id, ext string) string {
	return filepath.Join(d.dataDir, "snapshots", id+ext)
}

func newID(prefix string) string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path+".tmp", b, 0o600); err != nil {
		return err
	}
	return os.Rename(path+".tmp", path)
}

func (d *driver) loadVolume(id string) (*volume, error) {
	b, err := os.ReadFile(d.volPath(filepath.Base(id), ".json"))
	if err != nil {
		return nil, err
	}
	v := &volume{}
	return v, json.Unmarshal(b, v)
}

func (d *driver) loadSnapshot(id string) (*snapshot, error) {
	b, err := os.ReadFile(d.snapPath(filepath.Base(id), ".json"))
	if err != nil {
		return nil, err
	}
	s := &snapshot{}
	return s, json.Unmarshal(b, s)
}

func (d *driver) volumes() ([]*volume, error) {
	files, _ := filepath.Glob(d.volPath("*", ".json"))
	var out []*volume
	for _, f := range files {
		v, err := d.loadVolume(strings.TrimSuffix(filepath.Base(f), ".json"))
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

func (d *driver) snapshots() ([]*snapshot, error) {
	files, _ := filepath.Glob(d.snapPath("*", ".json"))
	var out []*snapshot
	for _, f := range files {
		s, err := d.loadSnapshot(strings.TrimSuffix(filepath.Base(f), ".json"))
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created < out[j].Created })
	return out, nil
}

// -------------------------------------------------------------- controller ----

func (d *driver) ControllerGetCapabilities(context.Context, *csi.ControllerGetCapabilitiesRequest) (*csi.ControllerGetCapabilitiesResponse, error) {
	var caps []*csi.ControllerServiceCapability
	for _, t := range []csi.ControllerServiceCapability_RPC_Type{
		csi.ControllerServiceCapability_RPC_CREATE_DELETE_VOLUME,
		csi.ControllerServiceCapability_RPC_CREATE_DELETE_SNAPSHOT,
		csi.ControllerServiceCapability_RPC_LIST_SNAPSHOTS,
		csi.ControllerServiceCapability_RPC_CLONE_VOLUME,
	} {
		caps = append(caps, &csi.ControllerServiceCapability{Type: &csi.ControllerServiceCapability_Rpc{
			Rpc: &csi.ControllerServiceCapability_RPC{Type: t}}})
	}
	return &csi.ControllerGetCapabilitiesResponse{Capabilities: caps}, nil
}

// checkCaps: Block or Mount (ext4 only); every access mode is accepted (one node per cluster).
func checkCaps(caps []*csi.VolumeCapability) (block bool, err error) {
	if len(caps) == 0 {
		return false, status.Error(codes.InvalidArgument, "volume capabilities missing")
	}
	var fs, blk bool
	for _, c := range caps {
		switch {
		case c.GetBlock() != nil:
			blk = true
		case c.GetMount() != nil:
			fs = true
			if t := c.GetMount().GetFsType(); t != "" && t != "ext4" {
				return false, status.Errorf(codes.InvalidArgument, "fsType %q not supported (ext4 only)", t)
			}
		default:
			return false, status.Error(codes.InvalidArgument, "access type must be block or mount")
		}
	}
	if fs && blk {
		return false, status.Error(codes.InvalidArgument, "both block and mount access requested")
	}
	return blk, nil
}

func (d *driver) CreateVolume(ctx context.Context, req *csi.CreateVolumeRequest) (*csi.CreateVolumeResponse, error) {
	if req.GetName() == "" {
		return nil, status.Error(codes.InvalidArgument, "name missing")
	}
	block, err := checkCaps(req.GetVolumeCapabilities())
	if err != nil {
		return nil, err
	}
	size := req.GetCapacityRange().GetRequiredBytes()
	if size == 0 {
		size = defaultBytes
	}
	size = (size + mib - 1) / mib * mib
	if !block && size < minFsBytes {
		size = minFsBytes
	}
	if lim := req.GetCapacityRange().GetLimitBytes(); lim > 0 && size > lim {
		return nil, status.Errorf(codes.OutOfRange, "size %d (rounded to MiB, at least %d for ext4) exceeds limit %d", size, minFsBytes, lim)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	vols, err := d.volumes()
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	for _, v := range vols { // idempotent by name
		if v.Name == req.GetName() {
			if v.Bytes != size || v.Block != block {
				return nil, status.Errorf(codes.AlreadyExists, "volume %s exists with another size or mode", v.Name)
			}
			return &csi.CreateVolumeResponse{Volume: d.csiVolume(v, req.GetVolumeContentSource())}, nil
		}
	}
	v := &volume{ID: newID("vol-"), Name: req.GetName(), Bytes: size, Block: block, Created: time.Now().UnixNano()}
	img := d.volPath(v.ID, ".img")
	tmp := img + ".tmp"
	defer os.Remove(tmp)
	var srcBytes int64
	switch {
	case req.GetVolumeContentSource().GetSnapshot() != nil:
		s, err := d.loadSnapshot(req.GetVolumeContentSource().GetSnapshot().GetSnapshotId())
		if err != nil {
			return nil, status.Errorf(codes.NotFound, "snapshot %s: %v", req.GetVolumeContentSource().GetSnapshot().GetSnapshotId(), err)
		}
		if s.Block != block {
			return nil, status.Errorf(codes.InvalidArgument, "snapshot %s is of a %s volume", s.ID, mode(s.Block))
		}
		if err := copySparse(d.snapPath(s.ID, ".img"), tmp); err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
		v.Source, srcBytes = s.ID, s.Bytes
	case req.GetVolumeContentSource().GetVolume() != nil:
		src, err := d.loadVolume(req.GetVolumeContentSource().GetVolume().GetVolumeId())
		if err != nil {
			return nil, status.Errorf(codes.NotFound, "volume %s: %v", req.GetVolumeContentSource().GetVolume().GetVolumeId(), err)
		}
		if src.Block != block {
			return nil, status.Errorf(codes.InvalidArgument, "volume %s is a %s volume", src.ID, mode(src.Block))
		}
		if err := d.copyVolume(src, tmp); err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
		v.Source, srcBytes = src.ID, src.Bytes
	default:
		f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
		if err == nil {
			err = f.Truncate(size)
			f.Close()
		}
		if err == nil && !block {
			_, err = run("mkfs.ext4", "-q", "-F", "-m", "0", "-E", "lazy_itable_init=0,root_owner=0:0", "-L", v.ID[len(v.ID)-16:], tmp)
		}
		if err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
	}
	if srcBytes > size {
		return nil, status.Errorf(codes.OutOfRange, "requested %d bytes, smaller than the source's %d", size, srcBytes)
	}
	if srcBytes > 0 && srcBytes < size {
		if err := os.Truncate(tmp, size); err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
		if !block {
			_, _ = run("e2fsck", "-f", "-y", tmp) // exit 1 = fixed; resize2fs says if it is not clean
			if _, err := run("resize2fs", tmp); err != nil {
				return nil, status.Error(codes.Internal, err.Error())
			}
		}
	}
	if err := os.Rename(tmp, img); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	if err := writeJSON(d.volPath(v.ID, ".json"), v); err != nil {
		os.Remove(img)
		return nil, status.Error(codes.Internal, err.Error())
	}
	log.Printf("created %s volume %s (%s, %d bytes, source %q)", mode(block), v.ID, v.Name, size, v.Source)
	return &csi.CreateVolumeResponse{Volume: d.csiVolume(v, req.GetVolumeContentSource())}, nil
}

func mode(block bool) string {
	if block {
		return "Block"
	}
	return "Filesystem"
}

func (d *driver) csiVolume(v *volume, src *csi.VolumeContentSource) *csi.Volume {
	return &csi.Volume{VolumeId: v.ID, CapacityBytes: v.Bytes, ContentSource: src}
}

func (d *driver) DeleteVolume(ctx context.Context, req *csi.DeleteVolumeRequest) (*csi.DeleteVolumeResponse, error) {
	if req.GetVolumeId() == "" {
		return nil, status.Error(codes.InvalidArgument, "volume id missing")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	v, err := d.loadVolume(req.GetVolumeId())
	if errors.Is(err, os.ErrNotExist) {
		return &csi.DeleteVolumeResponse{}, nil
	}
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	if devs := loopDevices(d.volPath(v.ID, ".img")); v.Staged != "" || len(devs) > 0 {
		return nil, status.Errorf(codes.FailedPrecondition, "volume %s is still staged at %q (loop %v)", v.ID, v.Staged, devs)
	}
	if err := os.Remove(d.volPath(v.ID, ".img")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, status.Error(codes.Internal, err.Error())
	}
	if err := os.Remove(d.volPath(v.ID, ".json")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, status.Error(codes.Internal, err.Error())
	}
	log.Printf("deleted volume %s (%s)", v.ID, v.Name)
	return &csi.DeleteVolumeResponse{}, nil
}

func (d *driver) ValidateVolumeCapabilities(ctx context.Context, req *csi.ValidateVolumeCapabilitiesRequest) (*csi.ValidateVolumeCapabilitiesResponse, error) {
	v, err := d.loadVolume(req.GetVolumeId())
	if err != nil {
		return nil, status.Errorf(codes.NotFound, "volume %s: %v", req.GetVolumeId(), err)
	}
	block, err := checkCaps(req.GetVolumeCapabilities())
	if err != nil || block != v.Block {
		return &csi.ValidateVolumeCapabilitiesResponse{Message: fmt.Sprintf("volume is %s", mode(v.Block))}, nil
	}
	return &csi.ValidateVolumeCapabilitiesResponse{Confirmed: &csi.ValidateVolumeCapabilitiesResponse_Confirmed{
		VolumeCapabilities: req.GetVolumeCapabilities()}}, nil
}

// quiesce makes a volume's image file a point-in-time image until the returned thaw is called:
// a staged Filesystem volume is frozen (FIFREEZE flushes it and blocks its writers); for a Block
// volume what was written through the loop device is flushed (no freeze exists for a raw device).
func (d *driver) quiesce(v *volume) (thaw func(), err error) {
	if !v.Block && v.Staged != "" && mounted(v.Staged) {
		f, err := os.Open(v.Staged)
		if err != nil {
			return nil, err
		}
		if err := unix.IoctlSetInt(int(f.Fd()), fiFreeze, 0); err != nil {
			f.Close()
			return nil, fmt.Errorf("freeze %s: %w", v.Staged, err)
		}
		return func() {
			if err := unix.IoctlSetInt(int(f.Fd()), fiThaw, 0); err != nil {
				log.Printf("ERROR: thaw %s: %v", v.Staged, err)
			}
			f.Close()
		}, nil
	}
	if v.Block {
		for _, dev := range loopDevices(d.volPath(v.ID, ".img")) {
			if f, err := os.Open(dev); err == nil {
				_ = f.Sync()
				f.Close()
			}
		}
	}
	return func() {}, nil
}

// thawAll thaws every staged filesystem, in case a previous run of the driver was killed while
// one was frozen for a snapshot (FITHAW of a filesystem that is not frozen fails harmlessly).
func (d *driver) thawAll() {
	vols, err := d.volumes()
	if err != nil {
		log.Printf("ERROR: %v", err)
		return
	}
	for _, v := range vols {
		if v.Block || v.Staged == "" || !mounted(v.Staged) {
			continue
		}
		if f, err := os.Open(v.Staged); err == nil {
			if unix.IoctlSetInt(int(f.Fd()), fiThaw, 0) == nil {
				log.Printf("thawed %s (%s), left frozen by a previous run", v.Staged, v.ID)
			}
			f.Close()
		}
	}
}

// copyVolume copies a volume's image to dst, quiesced meanwhile (one point in time).
func (d *driver) copyVolume(v *volume, dst string) error {
	thaw, err := d.quiesce(v)
	if err != nil {
		return err
	}
	defer thaw()
	return copySparse(d.volPath(v.ID, ".img"), dst)
}

func (d *driver) CreateSnapshot(ctx context.Context, req *csi.CreateSnapshotRequest) (*csi.CreateSnapshotResponse, error) {
	if req.GetName() == "" || req.GetSourceVolumeId() == "" {
		return nil, status.Error(codes.InvalidArgument, "name and source volume id are required")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	snaps, err := d.snapshots()
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	for _, s := range snaps { // idempotent by name
		if s.Name == req.GetName() {
			if s.Source != req.GetSourceVolumeId() {
				return nil, status.Errorf(codes.AlreadyExists, "snapshot %s exists for volume %s", s.Name, s.Source)
			}
			return &csi.CreateSnapshotResponse{Snapshot: csiSnapshot(s)}, nil
		}
	}
	v, err := d.loadVolume(req.GetSourceVolumeId())
	if err != nil {
		return nil, status.Errorf(codes.NotFound, "volume %s: %v", req.GetSourceVolumeId(), err)
	}
	s := &snapshot{ID: newID("snap-"), Name: req.GetName(), Source: v.ID, Bytes: v.Bytes, Block: v.Block}
	img := d.snapPath(s.ID, ".img")
	t := time.Now()
	if err := d.copyVolume(v, img+".tmp"); err != nil {
		os.Remove(img + ".tmp")
		return nil, status.Error(codes.Internal, err.Error())
	}
	s.Created = t.UnixNano()
	if err := os.Rename(img+".tmp", img); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	if err := writeJSON(d.snapPath(s.ID, ".json"), s); err != nil {
		os.Remove(img)
		return nil, status.Error(codes.Internal, err.Error())
	}
	log.Printf("snapshot %s (%s) of volume %s taken in %s (frozen: %v)", s.ID, s.Name, v.ID,
		time.Since(t).Round(time.Millisecond), !v.Block && v.Staged != "")
	return &csi.CreateSnapshotResponse{Snapshot: csiSnapshot(s)}, nil
}

func csiSnapshot(s *snapshot) *csi.Snapshot {
	return &csi.Snapshot{SnapshotId: s.ID, SourceVolumeId: s.Source, SizeBytes: s.Bytes,
		CreationTime: timestamppb.New(time.Unix(0, s.Created)), ReadyToUse: true, GroupSnapshotId: s.Group}
}

func (d *driver) DeleteSnapshot(ctx context.Context, req *csi.DeleteSnapshotRequest) (*csi.DeleteSnapshotResponse, error) {
	if req.GetSnapshotId() == "" {
		return nil, status.Error(codes.InvalidArgument, "snapshot id missing")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	id := filepath.Base(req.GetSnapshotId())
	for _, ext := range []string{".img", ".json"} {
		if err := os.Remove(d.snapPath(id, ext)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, status.Error(codes.Internal, err.Error())
		}
	}
	log.Printf("deleted snapshot %s", id)
	return &csi.DeleteSnapshotResponse{}, nil
}

func (d *driver) ListSnapshots(ctx context.Context, req *csi.ListSnapshotsRequest) (*csi.ListSnapshotsResponse, error) {
	snaps, err := d.snapshots()
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	resp := &csi.ListSnapshotsResponse{}
	for _, s := range snaps {
		if (req.GetSnapshotId() == "" || req.GetSnapshotId() == s.ID) &&
			(req.GetSourceVolumeId() == "" || req.GetSourceVolumeId() == s.Source) {
			resp.Entries = append(resp.Entries, &csi.ListSnapshotsResponse_Entry{Snapshot: csiSnapshot(s)})
		}
	}
	return resp, nil
}

// --------------------------------------------------------- group controller ----

func (d *driver) GroupControllerGetCapabilities(context.Context, *csi.GroupControllerGetCapabilitiesRequest) (*csi.GroupControllerGetCapabilitiesResponse, error) {
	return &csi.GroupControllerGetCapabilitiesResponse{Capabilities: []*csi.GroupControllerServiceCapability{{
		Type: &csi.GroupControllerServiceCapability_Rpc{Rpc: &csi.GroupControllerServiceCapability_RPC{
			Type: csi.GroupControllerServiceCapability_RPC_CREATE_DELETE_GET_VOLUME_GROUP_SNAPSHOT}},
	}}}, nil
}

func (d *driver) groupPath(id string) string {
	return filepath.Join(d.dataDir, "groups", filepath.Base(id)+".json")
}

func (d *driver) loadGroup(id string) (*group, error) {
	b, err := os.ReadFile(d.groupPath(id))
	if err != nil {
		return nil, err
	}
	g := &group{}
	return g, json.Unmarshal(b, g)
}

func (d *driver) csiGroup(g *group) (*csi.VolumeGroupSnapshot, error) {
	out := &csi.VolumeGroupSnapshot{GroupSnapshotId: g.ID, CreationTime: timestamppb.New(time.Unix(0, g.Created)), ReadyToUse: true}
	for _, id := range g.Snapshots {
		s, err := d.loadSnapshot(id)
		if err != nil {
			return nil, err
		}
		out.Snapshots = append(out.Snapshots, csiSnapshot(s))
	}
	return out, nil
}

// CreateVolumeGroupSnapshot quiesces all source volumes together (every staged filesystem frozen
// at once), copies each image, then thaws them: the member snapshots are one point in time across
// the volumes (crash-consistent as a group).
func (d *driver) CreateVolumeGroupSnapshot(ctx context.Context, req *csi.CreateVolumeGroupSnapshotRequest) (*csi.CreateVolumeGroupSnapshotResponse, error) {
	if req.GetName() == "" || len(req.GetSourceVolumeIds()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "name and source volume ids are required")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	files, _ := filepath.Glob(filepath.Join(d.dataDir, "groups", "*.json"))
	for _, f := range files { // idempotent by name
		g, err := d.loadGroup(strings.TrimSuffix(filepath.Base(f), ".json"))
		if err != nil || g.Name != req.GetName() {
			continue
		}
		resp, err := d.csiGroup(g)
		if err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
		srcs := map[string]bool{}
		for _, s := range resp.Snapshots {
			srcs[s.SourceVolumeId] = true
		}
		for _, id := range req.GetSourceVolumeIds() {
			if !srcs[id] {
				return nil, status.Errorf(codes.AlreadyExists, "group snapshot %s exists with other volumes", g.Name)
			}
		}
		return &csi.CreateVolumeGroupSnapshotResponse{GroupSnapshot: resp}, nil
	}
	var vols []*volume
	for _, id := range req.GetSourceVolumeIds() {
		v, err := d.loadVolume(id)
		if err != nil {
			return nil, status.Errorf(codes.NotFound, "volume %s: %v", id, err)
		}
		vols = append(vols, v)
	}
	g := &group{ID: newID("group-"), Name: req.GetName()}
	var thaws []func()
	defer func() {
		for _, t := range thaws {
			t()
		}
	}()
	for _, v := range vols {
		thaw, err := d.quiesce(v)
		if err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
		thaws = append(thaws, thaw)
	}
	t := time.Now()
	g.Created = t.UnixNano()
	var snaps []*snapshot
	cleanup := func() {
		for _, s := range snaps {
			os.Remove(d.snapPath(s.ID, ".img"))
			os.Remove(d.snapPath(s.ID, ".json"))
		}
	}
	for _, v := range vols {
		s := &snapshot{ID: newID("snap-"), Name: g.Name + "/" + v.ID, Source: v.ID, Bytes: v.Bytes, Block: v.Block, Created: g.Created, Group: g.ID}
		if err := copySparse(d.volPath(v.ID, ".img"), d.snapPath(s.ID, ".img")); err != nil {
			cleanup()
			return nil, status.Error(codes.Internal, err.Error())
		}
		if err := writeJSON(d.snapPath(s.ID, ".json"), s); err != nil {
			cleanup()
			return nil, status.Error(codes.Internal, err.Error())
		}
		snaps = append(snaps, s)
		g.Snapshots = append(g.Snapshots, s.ID)
	}
	if err := writeJSON(d.groupPath(g.ID), g); err != nil {
		cleanup()
		return nil, status.Error(codes.Internal, err.Error())
	}
	resp, err := d.csiGroup(g)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	log.Printf("group snapshot %s (%s) of %d volumes taken in %s", g.ID, g.Name, len(vols), time.Since(t).Round(time.Millisecond))
	return &csi.CreateVolumeGroupSnapshotResponse{GroupSnapshot: resp}, nil
}

func (d *driver) DeleteVolumeGroupSnapshot(ctx context.Context, req *csi.DeleteVolumeGroupSnapshotRequest) (*csi.DeleteVolumeGroupSnapshotResponse, error) {
	if req.GetGroupSnapshotId() == "" {
		return nil, status.Error(codes.InvalidArgument, "group snapshot id missing")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	ids := req.GetSnapshotIds()
	if g, err := d.loadGroup(req.GetGroupSnapshotId()); err == nil {
		ids = append(ids, g.Snapshots...)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, status.Error(codes.Internal, err.Error())
	}
	for _, id := range ids {
		for _, ext := range []string{".img", ".json"} {
			if err := os.Remove(d.snapPath(filepath.Base(id), ext)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return nil, status.Error(codes.Internal, err.Error())
			}
		}
	}
	if err := os.Remove(d.groupPath(req.GetGroupSnapshotId())); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, status.Error(codes.Internal, err.Error())
	}
	log.Printf("deleted group snapshot %s", req.GetGroupSnapshotId())
	return &csi.DeleteVolumeGroupSnapshotResponse{}, nil
}

func (d *driver) GetVolumeGroupSnapshot(ctx context.Context, req *csi.GetVolumeGroupSnapshotRequest) (*csi.GetVolumeGroupSnapshotResponse, error) {
	g, err := d.loadGroup(req.GetGroupSnapshotId())
	if err != nil {
		return nil, status.Errorf(codes.NotFound, "group snapshot %s: %v", req.GetGroupSnapshotId(), err)
	}
	resp, err := d.csiGroup(g)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &csi.GetVolumeGroupSnapshotResponse{GroupSnapshot: resp}, nil
}

// -------------------------------------------------------------------- node ----

func (d *driver) NodeGetInfo(context.Context, *csi.NodeGetInfoRequest) (*csi.NodeGetInfoResponse, error) {
	return &csi.NodeGetInfoResponse{NodeId: d.nodeID}, nil
}

func (d *driver) NodeGetCapabilities(context.Context, *csi.NodeGetCapabilitiesRequest) (*csi.NodeGetCapabilitiesResponse, error) {
	var caps []*csi.NodeServiceCapability
	for _, t := range []csi.NodeServiceCapability_RPC_Type{
		csi.NodeServiceCapability_RPC_STAGE_UNSTAGE_VOLUME,
		csi.NodeServiceCapability_RPC_GET_VOLUME_STATS,
	} {
		caps = append(caps, &csi.NodeServiceCapability{Type: &csi.NodeServiceCapability_Rpc{
			Rpc: &csi.NodeServiceCapability_RPC{Type: t}}})
	}
	return &csi.NodeGetCapabilitiesResponse{Capabilities: caps}, nil
}

// attach returns the loop device of img, attaching one if there is none.
func attach(img string) (string, error) {
	if devs := loopDevices(img); len(devs) > 0 {
		return devs[0], nil
	}
	out, err := run("losetup", "--find", "--show", img)
	return strings.TrimSpace(out), err
}

// loopDevices lists the loop devices backed by img (/sys/block/loop*/loop/backing_file).
func loopDevices(img string) []string {
	files, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err == nil && strings.TrimSpace(string(b)) == img {
			out = append(out, "/dev/"+filepath.Base(filepath.Dir(filepath.Dir(f))))
		}
	}
	return out
}

func detach(img string) error {
	for _, dev := range loopDevices(img) {
		if _, err := run("losetup", "-d", dev); err != nil {
			return err
		}
	}
	return nil
}

func (d *driver) NodeStageVolume(ctx context.Context, req *csi.NodeStageVolumeRequest) (*csi.NodeStageVolumeResponse, error) {
	stage := req.GetStagingTargetPath()
	if req.GetVolumeId() == "" || stage == "" || req.GetVolumeCapability() == nil {
		return nil, status.Error(codes.InvalidArgument, "volume id, staging path and capability are required")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	v, err := d.loadVolume(req.GetVolumeId())
	if err != nil {
		return nil, status.Errorf(codes.NotFound, "volume %s: %v", req.GetVolumeId(), err)
	}
	if (req.GetVolumeCapability().GetBlock() != nil) != v.Block {
		return nil, status.Errorf(codes.InvalidArgument, "volume %s is a %s volume", v.ID, mode(v.Block))
	}
	dev, err := attach(d.volPath(v.ID, ".img"))
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	if !v.Block && !mounted(stage) {
		if err := os.MkdirAll(stage, 0o750); err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
		opts := append([]string{"nodev", "nosuid"}, req.GetVolumeCapability().GetMount().GetMountFlags()...)
		if _, err := run("mount", "-t", "ext4", "-o", strings.Join(opts, ","), dev, stage); err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
		// a new filesystem: writable by any UID like a hostpath directory (kubelet applies fsGroup on top)
		if ents, _ := os.ReadDir(stage); len(ents) == 1 && ents[0].Name() == "lost+found" {
			_ = os.Remove(filepath.Join(stage, "lost+found"))
			_ = os.Chmod(stage, 0o777)
		}
	}
	v.Staged = stage
	if err := writeJSON(d.volPath(v.ID, ".json"), v); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &csi.NodeStageVolumeResponse{}, nil
}

func (d *driver) NodeUnstageVolume(ctx context.Context, req *csi.NodeUnstageVolumeRequest) (*csi.NodeUnstageVolumeResponse, error) {
	stage := req.GetStagingTargetPath()
	if req.GetVolumeId() == "" || stage == "" {
		return nil, status.Error(codes.InvalidArgument, "volume id and staging path are required")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if mounted(stage) {
		if _, err := run("umount", stage); err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
	}
	v, err := d.loadVolume(req.GetVolumeId())
	if errors.Is(err, os.ErrNotExist) {
		return &csi.NodeUnstageVolumeResponse{}, nil
	}
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	if err := detach(d.volPath(v.ID, ".img")); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	v.Staged = ""
	if err := writeJSON(d.volPath(v.ID, ".json"), v); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &csi.NodeUnstageVolumeResponse{}, nil
}

func (d *driver) NodePublishVolume(ctx context.Context, req *csi.NodePublishVolumeRequest) (*csi.NodePublishVolumeResponse, error) {
	target := req.GetTargetPath()
	if req.GetVolumeId() == "" || target == "" || req.GetStagingTargetPath() == "" || req.GetVolumeCapability() == nil {
		return nil, status.Error(codes.InvalidArgument, "volume id, staging path, target path and capability are required")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	v, err := d.loadVolume(req.GetVolumeId())
	if err != nil {
		return nil, status.Errorf(codes.NotFound, "volume %s: %v", req.GetVolumeId(), err)
	}
	if mounted(target) {
		return &csi.NodePublishVolumeResponse{}, nil
	}
	src := req.GetStagingTargetPath()
	if v.Block {
		devs := loopDevices(d.volPath(v.ID, ".img"))
		if len(devs) == 0 {
			return nil, status.Errorf(codes.FailedPrecondition, "volume %s is not staged", v.ID)
		}
		src = devs[0]
		if err := os.MkdirAll(filepath.Dir(target), 0o750); err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
		f, err := os.OpenFile(target, os.O_CREATE|os.O_RDONLY, 0o600)
		if err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
		f.Close()
	} else {
		if !mounted(src) {
			return nil, status.Errorf(codes.FailedPrecondition, "volume %s is not staged at %s", v.ID, src)
		}
		if err := os.MkdirAll(target, 0o750); err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
	}
	if _, err := run("mount", "--bind", src, target); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	if req.GetReadonly() {
		if _, err := run("mount", "-o", "remount,bind,ro", target); err != nil {
			_, _ = run("umount", target)
			return nil, status.Error(codes.Internal, err.Error())
		}
	}
	return &csi.NodePublishVolumeResponse{}, nil
}

func (d *driver) NodeUnpublishVolume(ctx context.Context, req *csi.NodeUnpublishVolumeRequest) (*csi.NodeUnpublishVolumeResponse, error) {
	target := req.GetTargetPath()
	if req.GetVolumeId() == "" || target == "" {
		return nil, status.Error(codes.InvalidArgument, "volume id and target path are required")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if mounted(target) {
		if _, err := run("umount", target); err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
	}
	if err := os.Remove(target); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &csi.NodeUnpublishVolumeResponse{}, nil
}

func (d *driver) NodeGetVolumeStats(ctx context.Context, req *csi.NodeGetVolumeStatsRequest) (*csi.NodeGetVolumeStatsResponse, error) {
	v, err := d.loadVolume(req.GetVolumeId())
	if err != nil {
		return nil, status.Errorf(codes.NotFound, "volume %s: %v", req.GetVolumeId(), err)
	}
	if v.Block {
		return &csi.NodeGetVolumeStatsResponse{Usage: []*csi.VolumeUsage{{Total: v.Bytes, Unit: csi.VolumeUsage_BYTES}}}, nil
	}
	var st unix.Statfs_t
	if err := unix.Statfs(req.GetVolumePath(), &st); err != nil {
		return nil, status.Errorf(codes.NotFound, "%s: %v", req.GetVolumePath(), err)
	}
	bs := int64(st.Bsize)
	return &csi.NodeGetVolumeStatsResponse{Usage: []*csi.VolumeUsage{
		{Unit: csi.VolumeUsage_BYTES, Total: int64(st.Blocks) * bs, Available: int64(st.Bavail) * bs, Used: int64(st.Blocks-st.Bfree) * bs},
		{Unit: csi.VolumeUsage_INODES, Total: int64(st.Files), Available: int64(st.Ffree), Used: int64(st.Files - st.Ffree)},
	}}, nil
}

// ------------------------------------------------------------------- helpers ----

// copySparse copies src to dst keeping holes (SEEK_DATA/SEEK_HOLE), dst gets src's size.
func copySparse(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer out.Close()
	size := st.Size()
	for off := int64(0); off < size; {
		data, err := unix.Seek(int(in.Fd()), off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // only a hole is left
		}
		if err != nil {
			return err
		}
		hole, err := unix.Seek(int(in.Fd()), data, unix.SEEK_HOLE)
		if err != nil {
			return err
		}
		if _, err := in.Seek(data, io.SeekStart); err != nil {
			return err
		}
		if _, err := out.Seek(data, io.SeekStart); err != nil {
			return err
		}
		if _, err := io.CopyN(out, in, hole-data); err != nil {
			return err
		}
		off = hole
	}
	if err := out.Truncate(size); err != nil {
		return err
	}
	return out.Sync()
}

func mounted(dir string) bool {
	data, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[1] == dir {
			return true
		}
	}
	return false
}

func run(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}
