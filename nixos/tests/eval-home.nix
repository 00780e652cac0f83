# Evaluates the home-manager modules (home-manager.nix and the sops-nix and agenix compat
# modules) with nixpkgs' module system, stand-ins for the home-manager options they touch
# (home-manager-stubs.nix) and a stub pkgs, for one configuration chosen by `case`. The Go
# tests in nixos/ run it:
#
#   nix-instantiate --eval --strict --json --readonly-mode nixos/tests/eval-home.nix \
#     --argstr nixpkgsLib /path/to/nixpkgs/lib --argstr case home
#
# With `--argstr upstream DIR --argstr case upstream-sops` (or upstream-agenix) it evaluates
# instead sops-nix's or agenix's own home-manager module, from a checkout at DIR, on the same
# configuration as the compat case and reports where that module puts each file; the tests
# keep that report as golden data (golden/home-manager-upstream.json).
{
  nixpkgsLib,
  case ? "home",
  upstream ? null,
}:

let
  lib =
    if builtins.pathExists (nixpkgsLib + "/lib/default.nix") then
      import (nixpkgsLib + "/lib")
    else
      import nixpkgsLib;

  drv = name: outPath: {
    type = "derivation";
    inherit name outPath;
  };

  pkgs = {
    # What the flake's modules build secretd with.
    inherit (import ./stub-pkgs.nix { inherit lib; }) callPackage;
    secretd = drv "secretd" "/usr/local";
    age = drv "age" "/nix/store/00000000000000000000000000000000-age";
    systemd = drv "systemd" "/nix/store/00000000000000000000000000000000-systemd";
    writeText = name: text: drv name "/nix/store/00000000000000000000000000000000-${name}" // { inherit text; };
    # A checked manifest is where the VM test installs it: /etc/secretd/user-manifest.json.
    runCommand =
      name: env: buildCommand:
      drv name "/etc/secretd/${lib.removePrefix "secretd-" name}" // { inherit env buildCommand; };
    # What sops-nix's and agenix's own modules use, for the upstream cases.
    writeTextFile = a: drv a.name "/nix/store/00000000000000000000000000000000-${a.name}";
    writeShellScript = name: _: drv name "/nix/store/00000000000000000000000000000000-${name}";
    writeShellApplication = a: drv a.name "/nix/store/00000000000000000000000000000000-${a.name}";
    stdenv = {
      isLinux = true;
      isDarwin = false;
      hostPlatform = {
        isLinux = true;
        isDarwin = false;
      };
    };
  };

  # One user, as home-manager describes them.
  alice = {
    home.username = "alice";
    home.homeDirectory = "/home/alice";
  };

  sopsFile = ./fixtures/secrets.sops.yaml;
  tokenFile = ./fixtures/token.age;

  # The configurations the compat cases and the upstream cases share.
  sopsConfig =
    { config, ... }:
    {
      sops = {
        defaultSopsFile = sopsFile;
        age.keyFile = "/home/alice/.config/sops/age/keys.txt";
        secrets."github/oauth_token" = { };
        secrets.npmrc = {
          path = "/home/alice/.npmrc";
          mode = "0600";
        };
        secrets.gitlab = {
          key = "gitlab/oauth_token";
          path = "%r/gitlab-token";
        };
        templates."gitconfig".content = ''
          [url "https://oauth2:${config.sops.placeholder."github/oauth_token"}@github.com/"]
            insteadOf = https://github.com/
        '';
        templates."hosts.yml" = {
          content = "github.com:\n  oauth_token: ${config.sops.placeholder."github/oauth_token"}\n";
          path = "/home/alice/.config/gh/hosts.yml";
        };
      };
    };

  agenixConfig = {
    age = {
      secrets.token.file = tokenFile;
      secrets.npmrc = {
        file = tokenFile;
        path = "/home/alice/.npmrc";
        mode = "0600";
      };
      secrets.renamed = {
        file = tokenFile;
        name = "tokens/renamed";
      };
    };
  };

  cases = {
    # The personal case: a token in a gitconfig URL rewrite rendered from a template, an
    # ~/.npmrc symlink, a user unit restarted when a secret changes.
    home =
      { config, ... }:
      {
        secretd = {
          defaultFile = sopsFile;
          secrets."github/oauth_token".restartUnits = [ "gh-sync.service" ];
          secrets.npmrc = {
            path = "${config.home.homeDirectory}/.npmrc";
            mode = "0600";
          };
          secrets.token = {
            file = tokenFile;
            reloadUnits = [ "gh-sync.service" ];
          };
          templates.gitconfig = {
            content = ''
              [url "https://oauth2:${config.secretd.placeholder."github/oauth_token"}@github.com/"]
                insteadOf = https://github.com/
            '';
            path = "${config.xdg.configHome}/git/secrets.inc";
            restartUnits = [ "git-maintenance.service" ];
          };
        };
      };
    empty = { };
    sops = sopsConfig;
    agenix = agenixConfig;
    # The flake's default module next to both compatibility modules, as users add them.
    flake-modules = {
      imports = [
        flake.homeManagerModules.default
        flake.homeManagerModules.sopsCompat
        flake.homeManagerModules.agenixCompat
        sopsConfig
      ];
    };
  };

  # The flake's modules, with this stub pkgs as the home configuration's nixpkgs.
  flake = (import ../../flake.nix).outputs {
    self = flake;
    nixpkgs = {
      inherit lib;
      legacyPackages = { };
    };
  };

  badCases = {
    bad-relative-path = {
      config = {
        secretd.secrets.a = {
          file = tokenFile;
          path = "npmrc";
        };
      };
      expect = [ ''secretd.secrets."a": path "npmrc" must be absolute'' ];
    };
    bad-binary-key = {
      config = {
        secretd.secrets.a = {
          file = tokenFile;
          key = "x";
        };
      };
      expect = [ ''secretd.secrets."a": key = "x" is set, but a binary secret'' ];
    };
    bad-sops-gpg = {
      config = {
        sops = {
          defaultSopsFile = sopsFile;
          gnupg.home = "/home/alice/.gnupg";
          age.keyFile = "/home/alice/.age-key.txt";
          secrets.a = { };
        };
      };
      expect = [ "sops.gnupg: secretd decrypts with age keys only" ];
    };
  };

  compatModules = {
    sops = ../compat/sops-home.nix;
    agenix = ../compat/agenix-home.nix;
  };

  evaluate =
    name: config:
    (lib.evalModules {
      modules = [
        ./home-manager-stubs.nix
        (compatModules.${name} or ../home-manager.nix)
        alice
        config
        { _module.args.pkgs = pkgs; }
      ];
    }).config;

  # The unit file home-manager writes from a user unit's sections: key=value lines, a list as
  # the key repeated, nulls, empty lists and empty sections left out.
  renderUnit =
    unit:
    lib.generators.toINI {
      listsAsDuplicateKeys = true;
      mkKeyValue =
        k: v:
        "${k}=${
          if builtins.isBool v then
            (if v then "true" else "false")
          else
            toString v
        }";
    } (lib.filterAttrs (_: s: s != { }) (lib.mapAttrs (_: lib.filterAttrs (_: v: v != null && v != [ ])) unit));

  failedAssertions = config: map (a: a.message) (lib.filter (a: !a.assertion) config.assertions);

  report = config: {
    failedAssertions = failedAssertions config;
    inherit (config) warnings;
    inherit (config.secretd) manifest;
    manifestFile = toString config.secretd.manifestFile;
    checkCommand = config.secretd.manifestFile.buildCommand or null;
    placeholders = config.secretd.placeholder;
    secretPaths = lib.mapAttrs (_: s: s.path) config.secretd.secrets;
    templatePaths = lib.mapAttrs (_: t: t.path) config.secretd.templates;
    units = config.systemd.user.services;
    unitTexts = lib.mapAttrs (_: renderUnit) config.systemd.user.services;
    activation = config.home.activation;
    packages = map toString config.home.packages;
  };

  # Where each file is declared to be: what a configuration refers to.
  upstreamPaths = {
    sops =
      config:
      {
        secretPaths = lib.mapAttrs (_: s: s.path) config.sops.secrets;
        templatePaths = lib.mapAttrs (_: t: t.path) config.sops.templates;
        secretsDir = config.sops.defaultSymlinkPath;
        mountPoint = config.sops.defaultSecretsMountPoint;
        identities = lib.optional (config.sops.age.keyFile != null) config.sops.age.keyFile ++ config.sops.age.sshKeyPaths;
      };
    agenix = config: {
      secretPaths = lib.mapAttrs (_: s: s.path) config.age.secrets;
      templatePaths = { };
      secretsDir = config.age.secretsDir;
      mountPoint = config.age.secretsMountPoint;
      identities = map toString config.age.identityPaths;
    };
  };

  upstreamModules = {
    sops = /. + upstream + "/modules/home-manager/sops.nix";
    agenix = /. + upstream + "/modules/age-home.nix";
  };

  evaluateUpstream =
    name:
    (lib.evalModules {
      modules = [
        ./home-manager-stubs.nix
        upstreamModules.${name}
        alice
        cases.${name}
        {
          _module.args.pkgs = pkgs;
          # Upstream also sets options this evaluation has no stand-in for (launchd agents,
          # session variables); only the paths are read.
          _module.check = false;
        }
      ];
    }).config;

  upstreamName = lib.removePrefix "upstream-" case;
in
if cases ? ${case} then
  report (evaluate case cases.${case})
  // lib.optionalAttrs (upstreamPaths ? ${case}) { compat = upstreamPaths.${case} (evaluate case cases.${case}); }
else if lib.hasPrefix "upstream-" case && upstream != null then
  upstreamPaths.${upstreamName} (evaluateUpstream upstreamName)
else if badCases ? ${case} then
  {
    inherit (badCases.${case}) expect;
    failedAssertions = failedAssertions (
      evaluate (if lib.hasPrefix "bad-sops" case then "sops" else "home") badCases.${case}.config
    );
  }
else if case == "list" then
  {
    good = lib.attrNames cases;
    bad = lib.attrNames badCases;
  }
else
  throw "unknown case ${case}"
