# `nix flake check` for the module: evaluates a whole NixOS system using it (which runs every
# NixOS assertion and type check), builds its manifests (which runs `secretd check` against
# the encrypted fixtures) and its unit files, and checks the units run that manifest.
{
  self,
  nixpkgs,
  system,
  pkgs,
}:

let
  nixos = nixpkgs.lib.nixosSystem {
    modules = [
      self.nixosModules.default
      (
        { config, ... }:
        {
          nixpkgs.hostPlatform = system;
          boot.loader.grub.enable = false;
          fileSystems."/".device = "/dev/disk/by-label/nixos";
          system.stateVersion = "25.11";

          services.openssh.enable = true;
          users.mutableUsers = false;
          users.users.root.hashedPasswordFile = config.secretd.secrets.root-password.path;
          users.users.app = {
            isSystemUser = true;
            group = "app";
          };
          users.groups.app = { };

          secretd = {
            enable = true;
            defaultFile = ./fixtures/secrets.sops.yaml;
            secrets = {
              token = {
                file = ./fixtures/token.age;
                owner = "app";
                services = [ "app" ];
              };
              "github/oauth_token".owner = "app";
              root-password = {
                key = "flag";
                neededForUsers = true;
              };
            };
            templates."app.conf" = {
              content = "token = ${config.secretd.placeholder."github/oauth_token"}\n";
              owner = "app";
              restartUnits = [ "app.service" ];
            };
          };

          systemd.services.app = {
            wantedBy = [ "multi-user.target" ];
            serviceConfig = {
              User = "app";
              ExecStart = "${pkgs.coreutils}/bin/cat ${config.secretd.templates."app.conf".path}";
            };
          };
        }
      )
    ];
  };

  inherit (nixos) config;

  # Forces the evaluation of the whole system (and so of NixOS's assertions) without
  # building it.
  toplevel = builtins.unsafeDiscardStringContext config.system.build.toplevel.drvPath;

  unitOf = name: "${config.systemd.units.${name}.unit}/${name}";
in
pkgs.runCommand "secretd-module-check" { } ''
  set -eu
  mkdir "$out"
  echo ${toplevel} > "$out/toplevel-drv"
  cp ${config.secretd.manifestFile} "$out/manifest.json"
  cp ${config.secretd.manifestFileForUsers} "$out/manifest-for-users.json"
  cp ${unitOf "secretd.service"} "$out/secretd.service"
  cp ${unitOf "app.service"} "$out/app.service"

  grep -qxF 'ExecStart=${config.secretd.package}/bin/secretd activate --manifest ${config.secretd.manifestFile}' "$out/secretd.service"
  grep -qxF 'LoadCredential=token:/run/secrets/token' "$out/app.service"
  grep -qF '"path":"/run/secrets/token"' "$out/manifest.json" && { echo "default path leaked into the manifest"; exit 1; }
  grep -qF '"secretsDir":"/run/secrets-for-users"' "$out/manifest-for-users.json"
''
