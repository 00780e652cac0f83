{
  description = "secretd: boot-time secret activation for NixOS, for agenix and sops-nix secrets";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs =
    { self, nixpkgs }:
    let
      inherit (nixpkgs) lib;

      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: lib.genAttrs systems (system: f system nixpkgs.legacyPackages.${system});

      # The hash of `go mod vendor`. nixos/update-vendor-hash.sh rewrites it after go.mod
      # changes; a test in nixos/ fails while it is stale.
      vendorHash = "sha256-4DKTLvUS+HPUj0T/6BBGOQqfA5TnJa/Tqt0D4AFTaJ0=";

      secretdFor = pkgs: pkgs.callPackage ./nixos/package.nix { inherit vendorHash; };

      # The modules build secretd with the system's own nixpkgs, so they work whether or not
      # the overlay is applied (and with a read-only nixpkgs.pkgs). Each set's package module is
      # one module, known by its key, so that importing several modules of a set (the default
      # one and a compatibility module) defines the package once.
      withPackage = package: module: {
        imports = [
          module
          package
        ];
      };
    in
    {
      overlays.default = final: _prev: { secretd = secretdFor final; };

      packages = forAllSystems (
        _system: pkgs: rec {
          secretd = secretdFor pkgs;
          default = secretd;
        }
      );

      nixosModules =
        let
          # The check at build time runs the build platform's secretd.
          package =
            { lib, pkgs, ... }:
            {
              key = "secretd-flake-package";
              secretd.package = lib.mkDefault (secretdFor pkgs);
              secretd.validationPackage = lib.mkDefault (secretdFor pkgs.pkgsBuildHost);
            };
        in
        {
          secretd = withPackage package ./nixos/module.nix;
          default = self.nixosModules.secretd;
          # Drop-in replacements for agenix's and sops-nix's modules: `age.*` and `sops.*`
          # configurations run on secretd unchanged.
          agenixCompat = withPackage package ./nixos/compat/agenix.nix;
          sopsCompat = withPackage package ./nixos/compat/sops.nix;
        };

      # A user's own secrets through home-manager (also in NixOS via
      # home-manager.sharedModules), and drop-in replacements for agenix's and sops-nix's
      # home-manager modules.
      homeManagerModules =
        let
          package =
            { lib, pkgs, ... }:
            {
              key = "secretd-flake-home-package";
              secretd.package = lib.mkDefault (secretdFor pkgs);
            };
        in
        {
          secretd = withPackage package ./nixos/home-manager.nix;
          default = self.homeManagerModules.secretd;
          agenixCompat = withPackage package ./nixos/compat/agenix-home.nix;
          sopsCompat = withPackage package ./nixos/compat/sops-home.nix;
        };

      checks = forAllSystems (
        system: pkgs:
        {
          package = self.packages.${system}.secretd;
          module = import ./nixos/tests/flake-check.nix { inherit self nixpkgs system pkgs; };
        }
        # The NixOS VM test, when the tree has one: a function of { self, nixpkgs, system,
        # pkgs } returning a derivation, such as pkgs.testers.runNixOSTest { ... }.
        // lib.optionalAttrs (builtins.pathExists ./vmtest/nixos-test.nix) {
          vmtest = import ./vmtest/nixos-test.nix { inherit self nixpkgs system pkgs; };
        }
      );

      devShells = forAllSystems (
        _system: pkgs: {
          default = pkgs.mkShell {
            packages = [
              pkgs.go
              pkgs.gopls
              pkgs.age
              pkgs.sops
              pkgs.ssh-to-age
            ];
          };
        }
      );

      formatter = forAllSystems (_system: pkgs: pkgs.nixfmt);
    };
}
