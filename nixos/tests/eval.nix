# Evaluates nixos/module.nix with nixpkgs' module system, stand-ins for the NixOS options it
# touches (nixos-stubs.nix) and a stub pkgs, for one configuration chosen by `case`. The Go
# tests in nixos/ run it:
#
#   nix-instantiate --eval --strict --json --readonly-mode nixos/tests/eval.nix \
#     --argstr nixpkgsLib /path/to/nixpkgs/lib --argstr case realistic
#
# Stub paths: the package is /usr/local (so ExecStart is /usr/local/bin/secretd) and a checked
# manifest named secretd-manifest.json is /etc/secretd/manifest.json, as the VM test installs
# them; an unchecked manifest (pkgs.writeText) gets a fake store path.
{
  nixpkgsLib,
  case ? "realistic",
}:

let
  lib =
    if builtins.pathExists (nixpkgsLib + "/lib/default.nix") then
      import (nixpkgsLib + "/lib")
    else
      import nixpkgsLib;

  pkgs = import ./stub-pkgs.nix { inherit lib; };
  facts = import ./compat-facts.nix { inherit lib; };
  compatConfigs = import ./compat-configs.nix;

  renderUnit = import ./render-unit.nix { inherit lib; };

  # A host with agenix-style files, a sops YAML default file with nested keys, templates,
  # credentials, a secret for a user's password and symlinks elsewhere.
  realistic =
    { config, ... }:
    {
      services.openssh.enable = true;
      # userborn, which (unlike systemd-sysusers) creates normal users.
      services.userborn.enable = true;
      users.mutableUsers = false;
      users.users = {
        alice = {
          isNormalUser = true;
          group = "users";
          hashedPasswordFile = config.secretd.secrets.alice-password.path;
        };
        nginx = {
          isSystemUser = true;
          group = "nginx";
        };
        grafana = {
          isSystemUser = true;
          group = "grafana";
        };
      };
      systemd.services = {
        nginx.script = "nginx";
        grafana.script = "grafana";
        gitlab-runner.script = "gitlab-runner";
        tailscaled.script = "tailscaled";
      };
      users.groups = {
        nginx = { };
        grafana = { };
      };
      secretd = {
        enable = true;
        defaultFile = ./fixtures/secrets.sops.yaml;
        keepGenerations = 2;
        secrets = {
          token = {
            file = ./fixtures/token.age;
            owner = "nginx";
            group = "nginx";
            mode = "0440";
            restartUnits = [ "nginx.service" ];
          };
          "github/oauth_token".owner = "alice";
          gitlab-token = {
            key = "gitlab/oauth_token";
            services = [ "gitlab-runner" ];
          };
          "tailscale/authkey" = {
            services = [ "tailscaled.service" ];
            reloadUnits = [ "tailscaled.service" ];
          };
          npmrc = {
            owner = "alice";
            group = "users";
            path = "/home/alice/.npmrc";
          };
          grafana-db = {
            key = "number";
            uid = 472;
            gid = 472;
          };
          api-token = {
            file = "/var/lib/secrets/app.env";
            key = "API_TOKEN";
            path = "/etc/app/token";
          };
          alice-password = {
            neededForUsers = true;
            key = "flag";
          };
        };
        templates = {
          "grafana.ini" = {
            content = ''
              [database]
              password = ${config.secretd.placeholder.grafana-db}
              [github]
              token = ${config.secretd.placeholder."github/oauth_token"}
            '';
            owner = "grafana";
            mode = "0440";
            restartUnits = [ "grafana.service" ];
          };
          "nginx/htpasswd" = {
            content = "admin:${config.secretd.placeholder.token}\n";
            owner = "nginx";
            path = "/etc/nginx/htpasswd";
            reloadUnits = [ "nginx.service" ];
          };
        };
      };
    };

  # What the golden unit files are rendered from: the default identities and one secret of
  # each kind, with systemd-sysusers so that both units exist.
  golden = {
    services.openssh.enable = true;
    systemd.sysusers.enable = true;
    secretd = {
      enable = true;
      secrets.token.file = ./fixtures/token.age;
      secrets.root-password = {
        file = ./fixtures/secrets.sops.yaml;
        key = "flag";
        neededForUsers = true;
      };
    };
  };

  withUsersFrom = extra: {
    imports = [ extra ];
    services.openssh.enable = true;
    secretd.enable = true;
    secretd.secrets.root-password = {
      file = ./fixtures/secrets.sops.yaml;
      key = "flag";
      neededForUsers = true;
    };
  };

  tokenFile = ./fixtures/token.age;
  sopsFile = ./fixtures/secrets.sops.yaml;

  # A configuration expected to fail exactly the assertions whose messages contain the given
  # strings.
  bad = secretd: extra: {
    config = {
      imports = [ extra ];
      services.openssh.enable = true;
      secretd = {
        enable = true;
      } // secretd;
    };
  };

  cases = {
    inherit realistic golden;

    # Users created by the classic activation script: the secret needed for users is activated
    # in an activation snippet that `users` depends on.
    classic = withUsersFrom { };
    userborn = withUsersFrom { services.userborn.enable = true; };

    disabled = {
      services.openssh.enable = true;
      secretd.secrets.token.file = tokenFile;
    };

    empty = {
      services.openssh.enable = true;
      secretd.enable = true;
    };

    formats = {
      services.openssh.enable = true;
      secretd = {
        enable = true;
        secrets = {
          inferred-yaml.file = sopsFile;
          inferred-binary.file = tokenFile;
          env-file = {
            file = "/srv/app.sops.env";
            key = "";
          };
          json-file.file = "/srv/secrets.sops.json";
          ini-file.file = "/srv/app.sops.ini";
          sops-binary = {
            file = "/srv/blob.sops.json";
            format = "binary";
          };
        };
      };
    };

    default-format = {
      services.openssh.enable = true;
      secretd = {
        enable = true;
        defaultFile = "/srv/secrets.json";
        defaultFormat = "json";
        secrets = {
          a = { };
          b.file = "/srv/other.yaml";
        };
      };
    };

    # Configurations written for agenix and sops-nix, through the compatibility modules.
    agenix-compat = {
      imports = [ ../compat/agenix.nix ];
      services.openssh.enable = true;
      users.users.nginx = {
        isSystemUser = true;
        group = "nginx";
      };
      age.secrets = {
        token.file = tokenFile;
        nginx-token = {
          file = tokenFile;
          owner = "nginx";
          mode = "0440";
          path = "/etc/nginx/token";
        };
      };
    };
    sops-compat =
      { config, ... }:
      {
        imports = [ ../compat/sops.nix ];
        services.openssh.enable = true;
        users.users.grafana = {
          isSystemUser = true;
          group = "grafana";
        };
        sops = {
          defaultSopsFile = sopsFile;
          age.keyFile = /var/lib/sops-nix/key.txt;
          secrets = {
            "github/oauth_token" = {
              owner = "grafana";
              restartUnits = [ "grafana.service" ];
            };
            blob = {
              format = "binary";
              sopsFile = "/srv/blob.sops.json";
            };
            root-pw = {
              neededForUsers = true;
              key = "flag";
            };
          };
          templates."grafana.ini" = {
            content = "token=${config.sops.placeholder."github/oauth_token"}";
            owner = "grafana";
          };
        };
      };

    # Consumers and an early-boot unit reading a secret by path are ordered after secretd.
    early-readers =
      { config, ... }:
      {
        services.openssh.enable = true;
        secretd = {
          enable = true;
          secrets.wg-key.file = tokenFile;
          secrets.token = {
            file = tokenFile;
            # A pattern is no unit to order against (secretd check refuses it later).
            restartUnits = [
              "app.service"
              "wireguard-*"
            ];
          };
        };
        systemd.services.wg-setup = {
          unitConfig.DefaultDependencies = false;
          serviceConfig.ExecStart = "wg set wg0 private-key ${config.secretd.secrets.wg-key.path}";
        };
        systemd.services.late-reader.serviceConfig.ExecStart = "cat ${config.secretd.secrets.wg-key.path}";
        systemd.network.netdevs.wg0 = {
          netdevConfig.Kind = "wireguard";
          wireguardConfig.PrivateKeyFile = config.secretd.secrets.wg-key.path;
        };
      };

    # age plugins on PATH and devices allowed only with plugins; a cross-compiled system checks
    # its manifest with the build platform's secretd.
    plugins = {
      services.openssh.enable = true;
      secretd = {
        enable = true;
        plugins = [ pkgs.age-plugin-yubikey ];
        secrets.token.file = tokenFile;
      };
    };
    cross = {
      services.openssh.enable = true;
      _module.args.pkgs = lib.mkForce (
        pkgs
        // {
          stdenv = pkgs.stdenv // {
            hostPlatform.system = "aarch64-linux";
          };
        }
      );
      secretd = {
        enable = true;
        secrets.token.file = tokenFile;
      };
    };

    # agenix's tutorial: the password file is activated alone into /run/agenix before users at
    # boot only, then with the other secrets.
    agenix-password = {
      imports = [ (compatConfigs.agenix-tutorial.config) ../compat/agenix.nix ];
      age.secrets.other.file = tokenFile;
      age.ageBin = "/nix/store/00000000000000000000000000000000-rage-0.11/bin/rage";
    };
    agenix-password-userborn = {
      imports = [ (compatConfigs.agenix-tutorial-userborn.config) ../compat/agenix.nix ];
    };

    # A password file written only after users are created draws a warning.
    late-password =
      { config, ... }:
      {
        services.openssh.enable = true;
        users.users.bob = {
          isNormalUser = true;
          hashedPasswordFile = config.secretd.secrets.bob-password.path;
        };
        secretd = {
          enable = true;
          secrets.bob-password = {
            file = sopsFile;
            key = "flag";
          };
        };
      };

    # Template text from a derivation: secretd reads the file, evaluation builds nothing.
    template-file =
      { config, ... }:
      {
        imports = [ ../compat/sops.nix ];
        services.openssh.enable = true;
        sops.defaultSopsFile = sopsFile;
        sops.secrets."github/oauth_token" = { };
        sops.templates."app.ini".file = pkgs.stub "app.ini";
        sops.templates."inline.conf".file = pkgs.writeText "inline.conf" "token=${config.sops.placeholder."github/oauth_token"}";
      };

    # A GnuPG home: gpg on the units' PATH, the home's file system mounted first.
    gnupg-home = {
      imports = [
        compatConfigs.sops-gnupg.config
        ../compat/sops.nix
      ];
    };

    # symlink = false: a copy at path, as agenix makes it.
    copies = {
      services.openssh.enable = true;
      secretd = {
        enable = true;
        secrets.copied = {
          file = tokenFile;
          path = "/etc/app/token";
          symlink = false;
        };
        secrets.linked = {
          file = tokenFile;
          path = "/etc/app/linked";
        };
        secrets.default-place = {
          file = tokenFile;
          symlink = false;
        };
      };
    };

    # With mutable users an owner may come from elsewhere: no assertion.
    mutable-unknown-owner = {
      services.openssh.enable = true;
      secretd = {
        enable = true;
        secrets.token = {
          file = tokenFile;
          owner = "ghost";
          group = "ghosts";
        };
      };
    };
  };

  badCases = {
    bad-no-identity = {
      config = {
        secretd.enable = true;
        secretd.secrets.token.file = tokenFile;
      };
      expect = [ "secretd.identityPaths is empty" ];
    };
    bad-duplicate-path = bad {
      secrets.a = {
        file = tokenFile;
        path = "/etc/shared";
      };
      secrets.b = {
        file = tokenFile;
        path = "/etc/shared";
      };
    } { } // {
      expect = [ ''secretd.secrets."a" and secretd.secrets."b" all have path "/etc/shared"'' ];
    };
    bad-duplicate-name = bad {
      secrets.a.file = tokenFile;
      secrets.b = {
        file = tokenFile;
        name = "a";
      };
    } { } // {
      expect = [ ''all have path "/run/secrets/a"'' ];
    };
    bad-template-path-clash = bad {
      secrets.a = {
        file = tokenFile;
        path = "/etc/app.conf";
      };
      templates.app = {
        content = "x";
        path = "/etc/app.conf";
      };
    } { } // {
      expect = [ ''secretd.secrets."a" and secretd.templates."app" all have path "/etc/app.conf"'' ];
    };
    bad-unknown-owner = bad {
      secrets.token = {
        file = tokenFile;
        owner = "ghost";
      };
    } { users.mutableUsers = false; } // {
      expect = [ ''owner "ghost" is not declared in users.users'' ];
    };
    bad-unknown-group = bad {
      templates.conf = {
        content = "x";
        group = "ghosts";
      };
    } { users.mutableUsers = false; } // {
      expect = [ ''secretd.templates."conf": group "ghosts" is not declared in users.groups'' ];
    };
    bad-binary-key = bad {
      secrets.token = {
        file = tokenFile;
        key = "password";
      };
    } { } // {
      expect = [ ''secretd.secrets."token": key = "password" is set, but a binary secret'' ];
    };
    bad-for-users-owner = bad {
      secrets.pw = {
        file = sopsFile;
        neededForUsers = true;
        owner = "alice";
      };
    } {
      users.users.alice = {
        isNormalUser = true;
      };
    } // {
      expect = [ ''secretd.secrets."pw": neededForUsers secrets are activated before users'' ];
    };
    bad-for-users-gid = bad {
      secrets.pw = {
        file = sopsFile;
        neededForUsers = true;
        gid = 100;
      };
    } { } // {
      expect = [ "must be owned by root" ];
    };
    bad-owner-and-uid = bad {
      secrets.token = {
        file = tokenFile;
        owner = "alice";
        uid = 1000;
      };
    } { } // {
      expect = [ "set owner or uid, not both" ];
    };
    bad-path-in-secrets-dir = bad {
      secrets.token = {
        file = tokenFile;
        path = "/run/secrets/other";
      };
    } { } // {
      expect = [ ''path "/run/secrets/other" is inside a secrets directory'' ];
    };
    bad-relative-path = bad {
      secrets.token = {
        file = tokenFile;
        path = "etc/token";
      };
    } { } // {
      expect = [ ''path "etc/token" must be absolute'' ];
    };
    bad-name = bad {
      secrets."../escape".file = tokenFile;
    } { } // {
      expect = [ ''name "../escape" must be segments'' ];
    };
    bad-rendered-name = bad {
      secrets."rendered/x".file = tokenFile;
    } { } // {
      expect = [ ''name "rendered/x" is inside rendered/'' ];
    };
    bad-no-file = bad {
      secrets.orphan = { };
    } { } // {
      expect = [ ''secretd.secrets."orphan": no encrypted file'' ];
    };
    bad-for-users-placeholder = {
      config =
        { config, ... }:
        {
          services.openssh.enable = true;
          secretd = {
            enable = true;
            secrets.pw = {
              file = sopsFile;
              key = "flag";
              neededForUsers = true;
            };
            templates.conf.content = "password=${config.secretd.placeholder.pw}";
          };
        };
      expect = [ ''secretd.templates."conf": uses the placeholder of "pw", a neededForUsers secret'' ];
    };
    bad-credential-clash = bad {
      secrets."a/b" = {
        file = tokenFile;
        services = [ "app" ];
      };
      secrets.a_b = {
        file = tokenFile;
        services = [ "app.service" ];
      };
    } { systemd.services.app.script = "app"; } // {
      expect = [ ''would all be credential "a_b" of app.service'' ];
    };
    bad-unknown-service = bad {
      secrets.token = {
        file = tokenFile;
        services = [ "grafana" "nginxx" ];
      };
    } { systemd.services.grafana.script = "grafana"; } // {
      expect = [ ''secretd.secrets."token": services names "nginxx", which no other module declares'' ];
    };
  };

  evaluate =
    config:
    (lib.evalModules {
      modules = [
        ./nixos-stubs.nix
        ../module.nix
        config
        { _module.args.pkgs = pkgs; }
      ];
    }).config;

  # A configuration of compat-configs.nix through secretd's compatibility module for its tool.
  compatModules = {
    sops = ../compat/sops.nix;
    agenix = ../compat/agenix.nix;
  };
  compatReport =
    c:
    let
      config = evaluate {
        imports = [
          compatModules.${c.tool}
          c.config
        ];
      };
    in
    {
      inherit (c) tool;
      failedAssertions = failedAssertions config;
    }
    // facts.secretd config;

  # The flake's modules, with this stub pkgs as the system's nixpkgs.
  flake = (import ../../flake.nix).outputs {
    self = flake;
    nixpkgs = {
      inherit lib;
      legacyPackages = { };
    };
  };
  evaluateFlakeModules =
    config:
    (lib.evalModules {
      modules = [
        ./nixos-stubs.nix
        config
        { _module.args.pkgs = pkgs; }
      ];
    }).config;

  failedAssertions = config: map (a: a.message) (lib.filter (a: !a.assertion) config.assertions);

  report =
    config:
    let
      secretdUnits = lib.filterAttrs (name: _: lib.hasPrefix "secretd" name) config.systemd.services;
    in
    {
      failedAssertions = failedAssertions config;
      manifest = config.secretd.manifest;
      manifestForUsers = config.secretd.manifestForUsers;
      manifestFile = toString config.secretd.manifestFile;
      manifestFileForUsers = toString config.secretd.manifestFileForUsers;
      checkCommand = config.secretd.manifestFile.buildCommand or null;
      placeholders = config.secretd.placeholder;
      inherit (config) warnings;
      credentialNames = lib.mapAttrs (_: s: s.credentialName) config.secretd.secrets;
      secretPaths = lib.mapAttrs (_: s: s.path) config.secretd.secrets;
      units = lib.mapAttrs (_: u: {
        inherit (u)
          description
          wantedBy
          requiredBy
          wants
          requires
          after
          before
          conflicts
          unitConfig
          serviceConfig
          ;
        restartTriggers = map toString u.restartTriggers;
        path = map toString u.path;
      }) config.systemd.services;
      unitTexts = lib.mapAttrs (name: renderUnit name) secretdUnits;
      activationScripts = lib.mapAttrs (
        _: s: if builtins.isString s then { deps = [ ]; text = s; } else { inherit (s) deps text; }
      ) config.system.activationScripts;
      systemPackages = map toString config.environment.systemPackages;
    };
in
if case == "chmod-modes" then
  # agenix modes as agenixCompat turns them into octal bits, one secret per mode.
  let
    modes = [ "0440" "770" "400" "0600" "u=r,g=r" "a+r" "go-rwx" "u+w,g+r" "=r" "u=rw,go=" "a=" "ug=rw,o=r" "o+x" "u=rwx,g=rx,o=" "g+w,o+w" "a-r,u+r" ];
    config = evaluate {
      imports = [ ../compat/agenix.nix ];
      services.openssh.enable = true;
      age.secrets = lib.listToAttrs (
        lib.imap0 (i: mode: lib.nameValuePair "s${toString i}" { file = tokenFile; inherit mode; }) modes
      );
    };
  in
  {
    failedAssertions = failedAssertions config;
    modes = lib.listToAttrs (
      lib.imap0 (i: mode: lib.nameValuePair mode config.secretd.secrets."s${toString i}".mode) modes
    );
  }
else if case == "sops-options" then
  # Every sops-nix option that has no counterpart set at once: what each becomes.
  let
    config = evaluate {
      imports = [ ../compat/sops.nix ];
      services.openssh.enable = true;
      sops = {
        defaultSopsFile = sopsFile;
        secrets.flag = { };
        age.keyFile = "/var/lib/sops-nix/key.txt";
        age.generateKey = true;
        age.plugins = [ pkgs.age-plugin-yubikey ];
        environment.SOPS_AGE_KEY_CMD = "true";
        log = [ "keyImport" ];
        useTmpfs = true;
        useSystemdActivation = false;
        package = pkgs.stub "sops-install-secrets";
        validationPackage = pkgs.stub "sops-install-secrets";
        gnupg.package = pkgs.gnupg;
        keepGenerations = 0;
      };
    };
  in
  {
    failedAssertions = failedAssertions config;
    inherit (config) warnings;
    sopsFileHash = config.sops.secrets.flag.sopsFileHash;
    manifestBuild = toString config.system.build.sops-nix-manifest;
    inherit (config.secretd.manifest) keepGenerations;
    generateKey = config.system.activationScripts.generate-age-key;
    snippetDeps = lib.mapAttrs (_: s: s.deps or [ ]) config.system.activationScripts;
    unit = { inherit (config.systemd.services.secretd) environment; path = map toString config.systemd.services.secretd.path; };
  }
else if case == "flake-modules" then
  # The default module next to both compatibility modules, as users add them.
  report (evaluateFlakeModules {
    imports = with flake.nixosModules; [
      default
      sopsCompat
      agenixCompat
    ];
    services.openssh.enable = true;
    sops.defaultSopsFile = sopsFile;
    sops.secrets."github/oauth_token" = { };
  })
else if cases ? ${case} then
  report (evaluate cases.${case})
else if badCases ? ${case} then
  {
    inherit (badCases.${case}) expect;
    failedAssertions = failedAssertions (evaluate badCases.${case}.config);
  }
else if lib.hasPrefix "compat:" case then
  compatReport compatConfigs.${lib.removePrefix "compat:" case}
else if case == "list" then
  {
    good = lib.attrNames cases;
    bad = lib.attrNames badCases;
    compat = lib.attrNames compatConfigs;
  }
else
  throw "unknown case ${case}"
