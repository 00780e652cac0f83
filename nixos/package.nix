# The secretd package. `vendorHash` comes from flake.nix, where nixos/update-vendor-hash.sh
# keeps it in step with go.mod.
{
  lib,
  buildGoModule,
  vendorHash,
  version ? "0.1.0",
}:

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
