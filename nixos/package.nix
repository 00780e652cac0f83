# The secretd package. `vendorHash` comes from flake.nix, where nixos/update-vendor-hash.sh
# keeps it in step with go.mod.
{
  lib,
  buildGoModule,
  go,
  vendorHash,
  version ? "0.1.0",
}:

let
  # go.mod's `go` line: an older toolchain would try to download a newer one, which the build
  # sandbox forbids, and fail with a message about GOTOOLCHAIN.
  goMod = builtins.readFile ../go.mod;
  required = builtins.head (builtins.match ".*\ngo ([0-9.]+)\n.*" goMod);
in
assert lib.assertMsg (lib.versionAtLeast go.version required)
  "secretd needs Go ${required} (go.mod), but this nixpkgs has Go ${go.version}: use a nixpkgs with Go >= ${required} (nixos-unstable), or override the package's buildGoModule with one using a newer go.";
buildGoModule {
  pname = "secretd";
  inherit version vendorHash;

  # Only what the Go build reads (Go files, go.mod, go.sum), so that editing Nix files, docs
  # or test data does not rebuild it.
  src = lib.cleanSourceWith {
    name = "secretd-source";
    src = ../.;
    filter =
      path: type:
      let
        name = baseNameOf path;
      in
      (type == "directory" && name != "testdata")
      || lib.hasSuffix ".go" name
      || name == "go.mod"
      || name == "go.sum";
  };

  subPackages = [ "cmd/secretd" ];

  env.CGO_ENABLED = 0;
  ldflags = [
    "-s"
    "-w"
  ];

  # The tests need root and mount namespaces, which the build sandbox does not have; CI runs
  # them with `go test ./...`.
  doCheck = false;

  meta = {
    description = "Boot-time secret activation for NixOS: agenix and sops files decrypted with the host's SSH key onto a ramfs";
    mainProgram = "secretd";
    platforms = lib.platforms.linux;
  };
}
