package vm

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func fakeKernel(t *testing.T, dep, builtin string) Kernel {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "modules.dep"), []byte(dep), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "modules.builtin"), []byte(builtin), 0o644); err != nil {
		t.Fatal(err)
	}
	return Kernel{Release: "test", ModulesDir: dir}
}

func TestModuleLoadOrderPutsDependenciesFirstOnce(t *testing.T) {
	k := fakeKernel(t, strings.Join([]string{
		"kernel/drivers/virtio/virtio_ring.ko:",
		"kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko",
		"kernel/drivers/virtio/virtio_pci_modern_dev.ko:",
		"kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko",
		"kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko",
		"kernel/fs/fat/vfat-mod.ko:",
	}, "\n"), "kernel/fs/ext4/ext4.ko\n")
	got, err := k.ModuleLoadOrder([]string{"virtio_pci", "virtio-blk", "ext4", "vfat_mod"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"kernel/drivers/virtio/virtio_ring.ko",
		"kernel/drivers/virtio/virtio.ko",
		"kernel/drivers/virtio/virtio_pci_modern_dev.ko",
		"kernel/drivers/virtio/virtio_pci.ko",
		"kernel/drivers/block/virtio_blk.ko",
		"kernel/fs/fat/vfat-mod.ko",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("order:\n got %v\nwant %v", got, want)
	}
}

func TestModuleLoadOrderRejectsUnknownAndCompressed(t *testing.T) {
	k := fakeKernel(t, "kernel/a.ko.xz:\n", "")
	if _, err := k.ModuleLoadOrder([]string{"missing"}); err == nil {
		t.Error("an unknown module was accepted")
	}
	if _, err := k.ModuleLoadOrder([]string{"a"}); err == nil {
		t.Error("a compressed module was accepted")
	}
}
