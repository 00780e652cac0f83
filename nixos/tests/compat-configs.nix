# Configurations as agenix and sops-nix users write them (each upstream README's examples,
# agenix's tutorial with hashedPasswordFile, templates, neededForUsers in each user mode,
# symlink = false, custom paths and names, restart and reload units). Each is evaluated through
# the upstream module (golden/regenerate.sh records what it produces in golden/upstream.json)
# and through secretd's compatibility module (nixos/eval_test.go checks they agree).
#
# `tool` says which module a configuration is written for; `config` sets only options that
# module and NixOS declare.
let
  sopsFile = ./fixtures/secrets.sops.yaml;
  ageFile = ./fixtures/token.age;

  systemUser = name: {
    users.users.${name} = {
      isSystemUser = true;
      group = name;
    };
    users.groups.${name} = { };
  };
in
{
  # sops-nix's README, "Deploy": the main example.
  sops-readme = {
    tool = "sops";
    config = {
      services.openssh.enable = true;
      sops.defaultSopsFile = sopsFile;
      sops.age.sshKeyPaths = [ "/etc/ssh/ssh_host_ed25519_key" ];
      sops.age.keyFile = "/var/lib/sops-nix/key.txt";
      sops.age.generateKey = true;
      sops.secrets.example-key = { };
      sops.secrets."myservice/my_subdir/my_secret" = { };
    };
  };

  # Owners, modes, numeric ids, units to restart and reload, a symlink elsewhere, a name with
  # ":" and a key of another name.
  sops-services = {
    tool = "sops";
    config = {
      imports = [
        (systemUser "hass")
        (systemUser "grafana")
      ];
      services.openssh.enable = true;
      sops.defaultSopsFile = sopsFile;
      sops.secrets = {
        "home-assistant-secrets.yaml" = {
          owner = "hass";
          path = "/var/lib/hass/secrets.yaml";
          restartUnits = [ "home-assistant.service" ];
        };
        "grafana/db" = {
          key = "gitlab/oauth_token";
          owner = "grafana";
          group = "keys";
          mode = "0440";
          reloadUnits = [ "grafana.service" ];
        };
        "passwords.sops.minion.json:minion" = {
          key = "number";
          uid = 472;
          gid = 472;
          mode = "440";
        };
      };
    };
  };

  # WireGuard keys for systemd-networkd (group systemd-network, 0640 as systemd.netdev(5)
  # asks), NetworkManager connections placed in /etc, a unit named without its suffix.
  sops-network = {
    tool = "sops";
    config =
      { config, ... }:
      {
        imports = [ (systemUser "duckdns") ];
        users.groups.systemd-network = { };
        services.openssh.enable = true;
        sops.age.sshKeyPaths = [ "/etc/ssh/ssh_host_ed25519_key" ];
        # No RSA host key as a GnuPG key, by the name sops-nix had before gnupg.sshKeyPaths.
        sops.sshKeyPaths = [ ];
        sops.defaultSopsFile = sopsFile;
        sops.secrets = {
          "wireguard/private-key" = {
            key = "github/oauth_token";
            group = config.users.groups.systemd-network.name;
            reloadUnits = [ "systemd-networkd.service" ];
            mode = "0640";
          };
          wg-home = {
            key = "flag";
            path = "/etc/NetworkManager/system-connections/wg-home.nmconnection";
            mode = "0600";
            owner = "root";
            group = "root";
            restartUnits = [ "NetworkManager.service" ];
          };
          duckdns = {
            key = "number";
            restartUnits = [ "duckdns" ];
            mode = "0500";
            owner = config.users.users.duckdns.name;
            group = config.users.users.duckdns.group;
          };
        };
        systemd.network.netdevs.wg0.wireguardConfig.PrivateKeyFile =
          config.sops.secrets."wireguard/private-key".path;
      };
  };

  # Templates: content with placeholders, a template file, owners, a path elsewhere.
  sops-templates = {
    tool = "sops";
    config =
      { config, ... }:
      {
        imports = [ (systemUser "grafana") ];
        services.openssh.enable = true;
        sops.defaultSopsFile = sopsFile;
        sops.secrets."github/oauth_token" = { };
        sops.secrets.flag = { };
        sops.templates."grafana.ini" = {
          content = ''
            [github]
            token = ${config.sops.placeholder."github/oauth_token"}
          '';
          owner = "grafana";
          mode = "0440";
          restartUnits = [ "grafana.service" ];
        };
        sops.templates."app.conf" = {
          file = ./fixtures/app.conf.tmpl;
          path = "/etc/app/app.conf";
          reloadUnits = [ "app.service" ];
        };
      };
  };

  # sops-nix's README, "Setting a user's password", with users created by the activation
  # script, by userborn, and by systemd-sysusers (which needs mutable users and system users).
  sops-password = {
    tool = "sops";
    config =
      { config, ... }:
      {
        services.openssh.enable = true;
        sops.defaultSopsFile = sopsFile;
        sops.secrets.my-password = {
          neededForUsers = true;
          key = "flag";
        };
        sops.secrets.other = {
          key = "number";
        };
        users.users.mic92 = {
          isNormalUser = true;
          hashedPasswordFile = config.sops.secrets.my-password.path;
        };
      };
  };
  sops-password-userborn = {
    tool = "sops";
    config =
      { config, ... }:
      {
        services.userborn.enable = true;
        services.openssh.enable = true;
        sops.defaultSopsFile = sopsFile;
        sops.secrets.my-password = {
          neededForUsers = true;
          key = "flag";
        };
        sops.secrets.other.key = "number";
        users.users.mic92 = {
          isNormalUser = true;
          hashedPasswordFile = config.sops.secrets.my-password.path;
        };
      };
  };
  sops-password-sysusers = {
    tool = "sops";
    config =
      { config, ... }:
      {
        imports = [ (systemUser "backup") ];
        systemd.sysusers.enable = true;
        services.openssh.enable = true;
        sops.defaultSopsFile = sopsFile;
        sops.secrets.backup-password = {
          neededForUsers = true;
          key = "flag";
        };
        sops.secrets.other.key = "number";
        users.users.backup.hashedPasswordFile = config.sops.secrets.backup-password.path;
      };
  };

  # A GnuPG home instead of SSH keys, as older sops-nix hosts have it.
  sops-gnupg = {
    tool = "sops";
    config = {
      services.openssh.enable = true;
      sops.defaultSopsFile = sopsFile;
      # The name sops-nix had before gnupg.home.
      sops.gnupgHome = "/var/lib/sops";
      sops.gnupg.sshKeyPaths = [ ];
      sops.age.sshKeyPaths = [ ];
      sops.secrets.example-key.key = "flag";
    };
  };

  # Files outside the store in every format, as sops-nix documents them.
  sops-formats = {
    tool = "sops";
    config = {
      services.openssh.enable = true;
      sops.validateSopsFiles = false;
      sops.age.keyFile = "/var/lib/sops-nix/key.txt";
      sops.defaultSopsFile = "/etc/secrets/secrets.yaml";
      sops.secrets = {
        github_token = {
          sopsFile = "/etc/secrets/secrets.json";
          format = "json";
        };
        "app.env" = {
          sopsFile = "/etc/secrets/app.env";
          format = "dotenv";
        };
        "app.ini" = {
          sopsFile = "/etc/secrets/app.ini";
          format = "ini";
        };
        "krb5.keytab" = {
          sopsFile = "/etc/secrets/krb5.keytab";
          format = "binary";
        };
        db.key = "";
      };
    };
  };

  # agenix's tutorial: a secret as a user's password file (users from the activation script).
  agenix-tutorial = {
    tool = "agenix";
    config =
      { config, ... }:
      {
        services.openssh.enable = true;
        age.secrets.secret1.file = ageFile;
        users.users.user1 = {
          isNormalUser = true;
          hashedPasswordFile = config.age.secrets.secret1.path;
        };
      };
  };
  # The same with userborn, which agenix handles with its own unit.
  agenix-tutorial-userborn = {
    tool = "agenix";
    config =
      { config, ... }:
      {
        services.userborn.enable = true;
        services.openssh.enable = true;
        age.secrets.secret1.file = ageFile;
        users.users.user1 = {
          isNormalUser = true;
          hashedPasswordFile = config.age.secrets.secret1.path;
        };
      };
  };

  # agenix's README, option by option: chmod modes, owner and group, symlink = false, name,
  # path.
  agenix-readme = {
    tool = "agenix";
    config = {
      imports = [ (systemUser "nginx") ];
      services.openssh.enable = true;
      age.secrets = {
        nginx-htpasswd = {
          file = ageFile;
          mode = "770";
          owner = "nginx";
          group = "nginx";
        };
        "elasticsearch.conf" = {
          file = ageFile;
          symlink = false;
        };
        monit = {
          name = "monitrc";
          file = ageFile;
        };
        monitrc-etc = {
          file = ageFile;
          path = "/etc/monitrc";
          mode = "u=r,g=r";
          owner = "nginx";
        };
        app-token = {
          file = ageFile;
          path = "/var/lib/app/token";
          symlink = false;
          mode = "0440";
          group = "nginx";
        };
      };
    };
  };

  # Identities and directories of one's own.
  agenix-identities = {
    tool = "agenix";
    config = {
      # The name agenix had before identityPaths, still in older configurations.
      age.sshKeyPaths = [ "/persist/etc/ssh/ssh_host_ed25519_key" ];
      age.secretsDir = "/run/keys/agenix";
      age.secretsMountPoint = "/run/keys/agenix.d";
      age.ageBin = "/nix/store/00000000000000000000000000000000-rage/bin/rage";
      age.secrets.wifi.file = ageFile;
    };
  };
}
