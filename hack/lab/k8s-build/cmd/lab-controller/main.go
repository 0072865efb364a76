// lab-controller: the lab's stand-ins for what a real cluster's platform provides, for one
// single-node lab cluster (hack/lab/lab.sh runs one per cluster, as root, in the root
// network and mount namespaces):
//
//   - LoadBalancer allocator (MetalLB layer-2 style): every Service of type LoadBalancer
//     without spec.loadBalancerClass gets an IP from --lb-range in
//     status.loadBalancer.ingress[0].ip; the IP is added (/32) to --iface of the node's
//     network namespace (--netns), so the node answers ARP for it on the lab wire and
//     kube-proxy's LoadBalancer rules DNAT it to the Service's endpoints. IPs of Services
//     that are gone (or no longer LoadBalancers) are removed from the interface.
//
//   - Dynamic local volume provisioner for StorageClasses whose provisioner is
//     --provisioner: a Pending PVC (Immediate binding, or WaitForFirstConsumer once the
//     scheduler picked this node) gets a PV of type `local` with node affinity to --node,
//     pre-bound to the claim. Each volume is its own ext4 filesystem of exactly the
//     requested size (a sparse file under --volume-dir, loop-mounted), so a full volume
//     fails writes with ENOSPC like a real disk. Released PVs with reclaim policy Delete
//     are unmounted, their files removed and the PV deleted.
//
// Only the Kubernetes API, the `ip` and `mount` tools and files under --volume-dir are
// touched.
package main

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	storagelisters "k8s.io/client-go/listers/storage/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
)

const (
	annProvisionedBy = "pv.kubernetes.io/provisioned-by"
	annSelectedNode  = "volume.kubernetes.io/selected-node"
	minVolumeBytes   = 16 << 20 // smallest ext4 made; smaller requests get this much
)

type controller struct {
	client      kubernetes.Interface
	node        string
	netns       string
	iface       string
	lbFirst     uint32
	lbLast      uint32
	volumeDir   string
	provisioner string

	svcs    corelisters.ServiceLister
	pvcs    corelisters.PersistentVolumeClaimLister
	pvs     corelisters.PersistentVolumeLister
	classes storagelisters.StorageClassLister
}

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the cluster")
	node := flag.String("node", "", "the cluster's (only) node name")
	netns := flag.String("netns", "", "network namespace of the node (name under /run/netns)")
	iface := flag.String("iface", "eth0", "node interface on the lab wire that gets the LoadBalancer IPs")
	lbRange := flag.String("lb-range", "", "LoadBalancer IP range FIRST-LAST, e.g. 10.250.0.100-10.250.0.149")
	volumeDir := flag.String("volume-dir", "", "directory for the volumes' backing files and mount points")
	provisioner := flag.String("provisioner", "ferry.local/lab-local", "StorageClass provisioner name served")
	resync := flag.Duration("resync", 10*time.Second, "full reconcile period")
	flag.Parse()
	if *kubeconfig == "" || *node == "" || *netns == "" || *lbRange == "" || *volumeDir == "" {
		log.Fatal("--kubeconfig, --node, --netns, --lb-range and --volume-dir are required")
	}
	first, last, err := parseRange(*lbRange)
	if err != nil {
		log.Fatalf("--lb-range: %v", err)
	}
	if err := os.MkdirAll(*volumeDir, 0o755); err != nil {
		log.Fatal(err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		log.Fatal(err)
	}
	cfg.UserAgent = "ferry-lab-controller"
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	f := informers.NewSharedInformerFactory(client, *resync)
	c := &controller{
		client: client, node: *node, netns: *netns, iface: *iface, lbFirst: first, lbLast: last,
		volumeDir: *volumeDir, provisioner: *provisioner,
		svcs: f.Core().V1().Services().Lister(), pvcs: f.Core().V1().PersistentVolumeClaims().Lister(),
		pvs: f.Core().V1().PersistentVolumes().Lister(), classes: f.Storage().V1().StorageClasses().Lister(),
	}
	kick := make(chan struct{}, 1)
	poke := func() {
		select {
		case kick <- struct{}{}:
		default:
		}
	}
	h := cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { poke() }, UpdateFunc: func(any, any) { poke() }, DeleteFunc: func(any) { poke() },
	}
	for _, inf := range []cache.SharedIndexInformer{
		f.Core().V1().Services().Informer(), f.Core().V1().PersistentVolumeClaims().Informer(),
		f.Core().V1().PersistentVolumes().Informer(), f.Storage().V1().StorageClasses().Informer(),
	} {
		if _, err := inf.AddEventHandler(h); err != nil {
			log.Fatal(err)
		}
	}
	f.Start(ctx.Done())
	for typ, ok := range f.WaitForCacheSync(ctx.Done()) {
		if !ok {
			log.Fatalf("cache of %v did not sync", typ)
		}
	}
	log.Printf("lab-controller for node %s: LoadBalancer range %s on %s/%s, provisioner %s in %s",
		c.node, *lbRange, c.netns, c.iface, c.provisioner, c.volumeDir)
	tick := time.NewTicker(*resync)
	defer tick.Stop()
	for {
		c.reconcileLoadBalancers(ctx)
		c.reconcileVolumes(ctx)
		select {
		case <-ctx.Done():
			log.Print("stopping")
			return
		case <-kick:
			time.Sleep(100 * time.Millisecond) // coalesce bursts of events
		case <-tick.C:
		}
	}
}

// ------------------------------------------------------------ LoadBalancer ----

func parseRange(s string) (uint32, uint32, error) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return 0, 0, errors.New("want FIRST-LAST")
	}
	first, last := ip4(a), ip4(b)
	if first == 0 || last == 0 || last < first {
		return 0, 0, fmt.Errorf("bad range %q", s)
	}
	return first, last, nil
}

func ip4(s string) uint32 {
	ip := net.ParseIP(strings.TrimSpace(s)).To4()
	if ip == nil {
		return 0
	}
	return binary.BigEndian.Uint32(ip)
}

func ipString(v uint32) string {
	b := make([]byte, 4)
	binary.BigEndian.PutUint32(b, v)
	return net.IP(b).String()
}

func (c *controller) inRange(s string) bool {
	v := ip4(s)
	return v != 0 && v >= c.lbFirst && v <= c.lbLast
}

func ours(s *corev1.Service) bool {
	return s.Spec.Type == corev1.ServiceTypeLoadBalancer && s.Spec.LoadBalancerClass == nil
}

func (c *controller) reconcileLoadBalancers(ctx context.Context) {
	list, err := c.svcs.List(labels.Everything())
	if err != nil {
		log.Printf("list services: %v", err)
		return
	}
	taken := map[string]string{} // ip -> ns/name
	var pending []*corev1.Service
	// keep valid assignments first, so IPs are stable across restarts
	for _, s := range list {
		key := s.Namespace + "/" + s.Name
		ing := s.Status.LoadBalancer.Ingress
		if !ours(s) {
			if len(ing) > 0 && c.inRange(ing[0].IP) && s.Spec.LoadBalancerClass == nil {
				c.setIngress(ctx, s, "") // no longer a LoadBalancer: withdraw the IP
			}
			continue
		}
		if len(ing) == 1 && c.inRange(ing[0].IP) && taken[ing[0].IP] == "" &&
			(s.Spec.LoadBalancerIP == "" || s.Spec.LoadBalancerIP == ing[0].IP) {
			taken[ing[0].IP] = key
			continue
		}
		pending = append(pending, s)
	}
	for _, s := range pending {
		ip := ""
		if want := s.Spec.LoadBalancerIP; want != "" {
			if c.inRange(want) && taken[want] == "" {
				ip = want
			} else {
				log.Printf("service %s/%s asks for loadBalancerIP %s, which is outside %s-%s or taken",
					s.Namespace, s.Name, want, ipString(c.lbFirst), ipString(c.lbLast))
				continue
			}
		}
		for v := c.lbFirst; ip == "" && v <= c.lbLast; v++ {
			if taken[ipString(v)] == "" {
				ip = ipString(v)
			}
		}
		if ip == "" {
			log.Printf("service %s/%s: LoadBalancer range exhausted", s.Namespace, s.Name)
			continue
		}
		if c.setIngress(ctx, s, ip) {
			taken[ip] = s.Namespace + "/" + s.Name
		}
	}
	c.syncAddresses(taken)
}

// setIngress writes status.loadBalancer.ingress (ip == "": empty).
func (c *controller) setIngress(ctx context.Context, s *corev1.Service, ip string) bool {
	cp := s.DeepCopy()
	cp.Status.LoadBalancer.Ingress = nil
	if ip != "" {
		vip := corev1.LoadBalancerIPModeVIP
		cp.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: ip, IPMode: &vip}}
	}
	if _, err := c.client.CoreV1().Services(s.Namespace).UpdateStatus(ctx, cp, metav1.UpdateOptions{}); err != nil {
		log.Printf("service %s/%s: set LoadBalancer ingress %q: %v", s.Namespace, s.Name, ip, err)
		return false
	}
	log.Printf("service %s/%s: LoadBalancer ingress %q", s.Namespace, s.Name, ip)
	return true
}

// syncAddresses makes the range's addresses on the node interface equal the assigned set.
func (c *controller) syncAddresses(assigned map[string]string) {
	out, err := run("ip", "-n", c.netns, "-4", "-o", "addr", "show", "dev", c.iface)
	if err != nil {
		log.Printf("list addresses of %s/%s: %v", c.netns, c.iface, err)
		return
	}
	have := map[string]bool{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "inet" {
				addr, _, _ := strings.Cut(f[i+1], "/")
				if c.inRange(addr) {
					have[addr] = true
				}
			}
		}
	}
	for ip, svc := range assigned {
		if !have[ip] {
			if _, err := run("ip", "-n", c.netns, "addr", "add", ip+"/32", "dev", c.iface); err != nil {
				log.Printf("add %s to %s/%s: %v", ip, c.netns, c.iface, err)
				continue
			}
			log.Printf("%s on %s/%s for %s", ip, c.netns, c.iface, svc)
		}
	}
	for ip := range have {
		if assigned[ip] == "" {
			if _, err := run("ip", "-n", c.netns, "addr", "del", ip+"/32", "dev", c.iface); err != nil {
				log.Printf("remove %s from %s/%s: %v", ip, c.netns, c.iface, err)
				continue
			}
			log.Printf("%s removed from %s/%s", ip, c.netns, c.iface)
		}
	}
}

// ------------------------------------------------------------- volumes --------

func (c *controller) reconcileVolumes(ctx context.Context) {
	classes, err := c.classes.List(labels.Everything())
	if err != nil {
		log.Printf("list storage classes: %v", err)
		return
	}
	mine := map[string]*storagev1.StorageClass{}
	for _, sc := range classes {
		if sc.Provisioner == c.provisioner {
			mine[sc.Name] = sc
		}
	}
	pvcs, err := c.pvcs.List(labels.Everything())
	if err != nil {
		log.Printf("list PVCs: %v", err)
		return
	}
	for _, pvc := range pvcs {
		if pvc.Spec.VolumeName != "" || pvc.Status.Phase != corev1.ClaimPending || pvc.DeletionTimestamp != nil ||
			pvc.Spec.StorageClassName == nil || mine[*pvc.Spec.StorageClassName] == nil {
			continue
		}
		sc := mine[*pvc.Spec.StorageClassName]
		if sc.VolumeBindingMode != nil && *sc.VolumeBindingMode == storagev1.VolumeBindingWaitForFirstConsumer &&
			pvc.Annotations[annSelectedNode] != c.node {
			continue // the scheduler has not picked this node for a consumer yet
		}
		if err := c.provision(ctx, pvc, sc); err != nil {
			log.Printf("provision %s/%s: %v", pvc.Namespace, pvc.Name, err)
		}
	}
	pvs, err := c.pvs.List(labels.Everything())
	if err != nil {
		log.Printf("list PVs: %v", err)
		return
	}
	for _, pv := range pvs {
		if pv.Annotations[annProvisionedBy] != c.provisioner || pv.Spec.Local == nil ||
			pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete ||
			(pv.Status.Phase != corev1.VolumeReleased && pv.Status.Phase != corev1.VolumeFailed) {
			continue
		}
		if err := c.deleteVolume(ctx, pv); err != nil {
			log.Printf("delete volume %s: %v", pv.Name, err)
		}
	}
}

func (c *controller) paths(pvName string) (img, mnt string) {
	return filepath.Join(c.volumeDir, pvName+".img"), filepath.Join(c.volumeDir, pvName)
}

func (c *controller) provision(ctx context.Context, pvc *corev1.PersistentVolumeClaim, sc *storagev1.StorageClass) error {
	if pvc.Spec.VolumeMode != nil && *pvc.Spec.VolumeMode == corev1.PersistentVolumeBlock {
		return errors.New("volumeMode Block is not supported by the lab provisioner")
	}
	req, ok := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
	if !ok || req.Value() <= 0 {
		return errors.New("no storage request")
	}
	name := "pvc-" + string(pvc.UID)
	if _, err := c.pvs.Get(name); err == nil {
		return nil // made already; the PV controller binds it
	}
	img, mnt := c.paths(name)
	if err := c.makeFilesystem(img, mnt, req.Value()); err != nil {
		return err
	}
	fs := corev1.PersistentVolumeFilesystem
	policy := corev1.PersistentVolumeReclaimDelete
	if sc.ReclaimPolicy != nil {
		policy = *sc.ReclaimPolicy
	}
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Annotations: map[string]string{annProvisionedBy: c.provisioner},
			Labels:      map[string]string{"ferry.local/lab-node": c.node},
		},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: req.DeepCopy()},
			AccessModes:                   pvc.Spec.AccessModes,
			PersistentVolumeReclaimPolicy: policy,
			StorageClassName:              sc.Name,
			MountOptions:                  sc.MountOptions,
			VolumeMode:                    &fs,
			ClaimRef: &corev1.ObjectReference{
				Kind: "PersistentVolumeClaim", APIVersion: "v1",
				Namespace: pvc.Namespace, Name: pvc.Name, UID: pvc.UID, ResourceVersion: pvc.ResourceVersion,
			},
			PersistentVolumeSource: corev1.PersistentVolumeSource{Local: &corev1.LocalVolumeSource{Path: mnt}},
			NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{
				NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{
					Key: "kubernetes.io/hostname", Operator: corev1.NodeSelectorOpIn, Values: []string{c.node},
				}}}},
			}},
		},
	}
	if _, err := c.client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create PV %s: %w", name, err)
	}
	log.Printf("provisioned %s for %s/%s: %s ext4 at %s", name, pvc.Namespace, pvc.Name, req.String(), mnt)
	return nil
}

// makeFilesystem: a sparse file of exactly `size` bytes (rounded up to 1 MiB), ext4 without
// reserved blocks and journal (so nearly all of it holds data), loop-mounted on mnt, root dir
// 0777 without lost+found (like a local-path directory). Idempotent.
func (c *controller) makeFilesystem(img, mnt string, size int64) error {
	if mounted(mnt) {
		return nil
	}
	size = (size + (1<<20 - 1)) &^ (1<<20 - 1)
	if size < minVolumeBytes {
		size = minVolumeBytes
	}
	if _, err := os.Stat(img); errors.Is(err, os.ErrNotExist) {
		tmp := img + ".tmp"
		f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		err = f.Truncate(size)
		f.Close()
		if err != nil {
			return err
		}
		if _, err := run("mkfs.ext4", "-q", "-F", "-m", "0", "-O", "^has_journal",
			"-E", "lazy_itable_init=0,root_owner=0:0", "-L", labelOf(img), tmp); err != nil {
			os.Remove(tmp)
			return err
		}
		if err := os.Rename(tmp, img); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		return err
	}
	if _, err := run("mount", "-o", "loop,nodev,nosuid", img, mnt); err != nil {
		return err
	}
	_ = os.Remove(filepath.Join(mnt, "lost+found"))
	return os.Chmod(mnt, 0o777)
}

func labelOf(img string) string {
	l := strings.TrimSuffix(filepath.Base(img), ".img")
	if len(l) > 16 {
		l = l[len(l)-16:]
	}
	return l
}

func (c *controller) deleteVolume(ctx context.Context, pv *corev1.PersistentVolume) error {
	img, mnt := c.paths(pv.Name)
	if pv.Spec.Local.Path != mnt {
		return fmt.Errorf("path %s is not under %s; left alone", pv.Spec.Local.Path, c.volumeDir)
	}
	if mounted(mnt) {
		if _, err := run("umount", mnt); err != nil {
			return err // still in use (a pod on its way out): retried next round
		}
	}
	if err := os.Remove(mnt); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := os.Remove(img); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	err := c.client.CoreV1().PersistentVolumes().Delete(ctx, pv.Name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	log.Printf("deleted volume %s (was %s/%s)", pv.Name, claimNS(pv), claimName(pv))
	return nil
}

func claimNS(pv *corev1.PersistentVolume) string {
	if pv.Spec.ClaimRef == nil {
		return ""
	}
	return pv.Spec.ClaimRef.Namespace
}

func claimName(pv *corev1.PersistentVolume) string {
	if pv.Spec.ClaimRef == nil {
		return ""
	}
	return pv.Spec.ClaimRef.Name
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
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}
