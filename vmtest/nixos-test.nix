# NixOS VM test of secretd: the scenarios of vmtest/ (see vmtest/README.md) with the real
# NixOS module, switch-to-configuration and users created by NixOS. Run it with
#   nix build .#checks.x86_64-linux.vmtest
# The secrets are throwaway values in vmtest/testdata/nixos, encrypted to a test host key
# committed beside them (regenerate.sh remakes them and expected.json, their SHA-256).
{ pkgs, self, ... }:
let
  inherit (pkgs) lib;
  fixtures = ./testdata/nixos;
  fixture = name: fixtures + "/${name}.age";
  expected = builtins.fromJSON (builtins.readFile ./testdata/nixos/expected.json);
  package = self.packages.${pkgs.stdenv.hostPlatform.system}.secretd;

  # A consumer records the SHA-256 of the secret it read at start in /run/<name>/seen and
  # idles, so the test can tell which value each running instance saw.
  consumer =
    name:
    {
      read,
      serviceConfig ? { },
    }:
    {
      wantedBy = [ "multi-user.target" ];
      after = [ "secretd.service" ];
      startLimitIntervalSec = 0;
      serviceConfig = {
        RuntimeDirectory = name;
      }
      // serviceConfig;
      script = ''
        sha256sum <${read} | cut -d" " -f1 >"$RUNTIME_DIRECTORY/seen"
        exec sleep infinity
      '';
    };

  # Each specialisation is what a `nixos-rebuild switch` to a new configuration would
  # activate; they build on each other as the scenarios do.
  rotated = {
    secretd.secrets.db-password.file = lib.mkForce (fixture "db-password-2");
    secretd.secrets.api-token.file = lib.mkForce (fixture "api-token-2");
  };
  modeChanged = {
    imports = [ rotated ];
    secretd.secrets.owned-cert.mode = lib.mkForce "0400";
  };
  broken = {
    imports = [ modeChanged ];
    secretd.secrets.undecryptable-token.file = fixture "undecryptable";
  };

  # wg-key's encrypted file lives outside the store, where the switch-rerun scenario rewrites
  # it in place without changing the configuration.
  wgKeyFile = "/var/lib/vmtest/wg-key.age";
in
pkgs.testers.runNixOSTest {
  name = "secretd";

  nodes.machine =
    { config, pkgs, ... }:
    {
      imports = [ ../nixos/module.nix ];

      # Users and groups come from userborn, so secretd-for-users.service runs
      # (systemd-sysusers would refuse the normal user alice).
      services.userborn.enable = true;
      users.mutableUsers = false;
      users.allowNoPasswordLogin = true;
      users.groups.svcgrp.gid = 1600;
      users.users.svcuser = {
        isSystemUser = true;
        uid = 1500;
        group = "svcgrp";
      };
      users.users.alice = {
        isNormalUser = true;
        hashedPasswordFile = config.secretd.secrets.alice-password.path;
      };

      environment.etc."ssh/ssh_host_ed25519_key" = {
        source = fixtures + "/ssh_host_ed25519_key";
        mode = "0600";
      };

      secretd = {
        enable = true;
        inherit package;
        identityPaths = [ "/etc/ssh/ssh_host_ed25519_key" ];
        secrets = {
          # Handed to app-restart as a credential by the module (LoadCredential, restart).
          db-password = {
            file = fixture "db-password-1";
            services = [ "app-restart" ];
          };
          api-token = {
            file = fixture "api-token-1";
            group = "svcgrp";
            mode = "0440";
            reloadUnits = [ "app-reload.service" ];
          };
          static-key = {
            file = fixture "static-key";
            owner = "svcuser";
            group = "svcgrp";
            restartUnits = [ "app-static.service" ];
          };
          owned-cert = {
            file = fixture "owned-cert";
            owner = "svcuser";
            group = "svcgrp";
            mode = "0440";
            restartUnits = [ "app-owner.service" ];
          };
          "tls/server.key".file = fixture "tls-server-key";
          alice-password = {
            file = fixture "alice-password";
            neededForUsers = true;
          };
          # Read at start by vmtest-early, an early-boot unit.
          wg-key = {
            file = wgKeyFile;
            restartUnits = [ "vmtest-early.service" ];
          };
        };
        # The build cannot read wg-key's file, which is outside the store.
        checkManifest = false;
      };

      # Before systemd starts any unit at boot; never overwrites the file the test rewrites.
      system.activationScripts.vmtest-wg-key = {
        deps = [ "specialfs" ];
        text = "[ -e ${wgKeyFile} ] || install -D -m 0644 ${fixture "wg-key-1"} ${wgKeyFile}";
      };
      environment.etc."vmtest/wg-key-2.age".source = fixture "wg-key-2";

      systemd.services = {
        app-restart = consumer "app-restart" {
          read = ''"$CREDENTIALS_DIRECTORY/db-password"'';
          serviceConfig.DynamicUser = true;
        };
        app-reload = consumer "app-reload" {
          read = ''"$CREDENTIALS_DIRECTORY/token"'';
          serviceConfig = {
            DynamicUser = true;
            LoadCredential = "token:/run/secrets/api-token";
            ExecReload = "+${pkgs.writeShellScript "count-reload" "echo reload >>/run/app-reload.reloads"}";
          };
        };
        app-static = consumer "app-static" {
          read = "/run/secrets/static-key";
          serviceConfig.User = "svcuser";
        };
        app-owner = consumer "app-owner" {
          read = "/run/secrets/owned-cert";
          serviceConfig.User = "svcuser";
        };
        # An early-boot unit (as systemd-networkd reading a WireGuard key) that names no order:
        # the module orders secretd.service before it because it reads a secret.
        vmtest-early = {
          wantedBy = [ "sysinit.target" ];
          before = [ "sysinit.target" ];
          startLimitIntervalSec = 0;
          unitConfig.DefaultDependencies = false;
          serviceConfig = {
            Type = "oneshot";
            RemainAfterExit = true;
          };
          script = ''
            mkdir -p /run/vmtest-early
            sum=$(sha256sum </run/secrets/wg-key)
            echo "''${sum%% *}" >/run/vmtest-early/seen
          '';
        };
        # Records, before secretd runs at boot, that no generation exists yet.
        secretd-probe = {
          wantedBy = [ "sysinit.target" ];
          before = [
            "secretd.service"
            "sysinit.target"
          ];
          unitConfig.DefaultDependencies = false;
          serviceConfig = {
            Type = "oneshot";
            RemainAfterExit = true;
          };
          script = ''
            mkdir -p /run/vmtest
            n=0
            [ -d /run/secrets.d ] && n=$(find /run/secrets.d -mindepth 1 -maxdepth 1 | wc -l)
            s=absent
            { [ -e /run/secrets ] || [ -L /run/secrets ]; } && s=present
            echo "generations=$n secrets=$s" >/run/vmtest/probe
          '';
        };
      };

      specialisation = {
        rotated.configuration = rotated;
        mode-changed.configuration = modeChanged;
        broken.configuration = broken;
      };
    };

  # agenixCompat with users created by the activation script (neither userborn nor
  # systemd-sysusers): bob's hashedPasswordFile is an age secret, activated before users.
  nodes.agenix =
    { config, ... }:
    {
      imports = [ ../nixos/compat/agenix.nix ];
      secretd.package = package;
      users.mutableUsers = false;
      users.allowNoPasswordLogin = true;
      users.users.bob = {
        isNormalUser = true;
        hashedPasswordFile = config.age.secrets.bob-password.path;
      };
      # The activation script creates users before it populates /etc, so the throwaway test
      # key is read from the store; a real host's key is already on its disk.
      age.identityPaths = [ "${fixtures}/ssh_host_ed25519_key" ];
      age.secrets.bob-password.file = fixture "bob-password";

      # symlink-migration: agenix (symlink = false) left a regular file at the path.
      users.groups.svcgrp.gid = 1600;
      users.users.svcuser = {
        isSystemUser = true;
        uid = 1500;
        group = "svcgrp";
      };
      age.secrets.app-config = {
        file = fixture "static-key";
        path = "/var/lib/app/config";
        symlink = false;
        owner = "svcuser";
        group = "svcgrp";
        mode = "0440";
      };
      system.activationScripts.vmtest-agenix-leftover = {
        deps = [ "specialfs" ];
        text = ''
          if [ ! -e /var/lib/app/config ]; then
            mkdir -p /var/lib/app
            echo "written by agenix" >/var/lib/app/config
            chmod 0400 /var/lib/app/config
          fi
        '';
      };
    };

  testScript =
    { nodes, ... }:
    let
      switchTo = name: "${nodes.machine.system.build.toplevel}/specialisation/${name}/bin/switch-to-configuration test";
    in
    ''
      import json

      expected = json.loads(${builtins.toJSON (builtins.toJSON expected)})

      # Owner, group, mode and fixture of every secret after each activation.
      v1 = {
          "db-password": ("root", "root", "400", "db-password-1"),
          "api-token": ("root", "svcgrp", "440", "api-token-1"),
          "static-key": ("svcuser", "svcgrp", "400", "static-key"),
          "owned-cert": ("svcuser", "svcgrp", "440", "owned-cert"),
          "tls/server.key": ("root", "root", "400", "tls-server-key"),
          "wg-key": ("root", "root", "400", "wg-key-1"),
      }
      v2 = dict(v1, **{
          "db-password": ("root", "root", "400", "db-password-2"),
          "api-token": ("root", "svcgrp", "440", "api-token-2"),
      })
      v3 = dict(v2, **{"owned-cert": ("svcuser", "svcgrp", "400", "owned-cert")})
      # After wg-key's file outside the store was rewritten with wg-key-2.
      switched = dict(v3, **{"wg-key": ("root", "root", "400", "wg-key-2")})


      def prop(unit, name):
          return machine.succeed(f"systemctl show -P {name} {unit}").strip()


      def sha(path):
          return machine.succeed(f"sha256sum <{path} | cut -d' ' -f1").strip()


      def check_set(secrets, directory="/run/secrets"):
          for name, (owner, group, mode, fixture) in secrets.items():
              path = f"{directory}/{name}"
              got = machine.succeed(f"stat -L -c '%U:%G %a' {path}").strip()
              assert got == f"{owner}:{group} {mode}", f"{name}: {got}, want {owner}:{group} {mode}"
              # Only hashes are compared, and a mismatch is reported without them.
              assert sha(path) == expected[fixture], f"{name}: content is not {fixture}"


      def seen(unit, fixture):
          machine.wait_until_succeeds(f"test -s /run/{unit}/seen")
          got = machine.succeed(f"cat /run/{unit}/seen").strip()
          assert got == expected[fixture], f"{unit} read other content than {fixture}"


      def seen_now(unit, fixture):
          machine.wait_until_succeeds(f"grep -qx {expected[fixture]} /run/{unit}/seen")


      def shadow_sha(node, user):
          return node.succeed(f"getent shadow {user} | cut -d: -f2 | tr -d '\\n' | sha256sum | cut -d' ' -f1").strip()


      def ids():
          return {u: prop(f"{u}.service", "InvocationID") for u in ["app-restart", "app-reload", "app-static", "app-owner"]}


      def reloads():
          return int(machine.succeed("cat /run/app-reload.reloads 2>/dev/null | wc -l").strip())


      def live():
          return machine.succeed("readlink -f /run/secrets").strip()


      machine.wait_for_unit("multi-user.target")
      for unit in ["app-restart", "app-reload", "app-static", "app-owner"]:
          machine.wait_for_unit(f"{unit}.service")

      with subtest("boot: activation before sysinit.target onto a ramfs, owners, modes, credentials"):
          # Inactive once done (no RemainAfterExit), so that every switch reruns it.
          assert prop("secretd.service", "Result") == "success"
          active = int(prop("secretd.service", "ExecMainExitTimestampMonotonic"))
          sysinit = int(prop("sysinit.target", "ActiveEnterTimestampMonotonic"))
          assert 0 < active <= sysinit, f"secretd active at {active}us, sysinit.target at {sysinit}us"
          machine.succeed("grep -qx 'generations=0 secrets=absent' /run/vmtest/probe")
          machine.succeed("test \"$(stat -f -c %T /run/secrets.d)\" = ramfs")
          machine.succeed("grep -q ' /run/secrets.d ramfs ' /proc/mounts")
          machine.succeed("test -L /run/secrets")
          assert live().startswith("/run/secrets.d/"), live()
          check_set(v1)
          machine.fail("runuser -u svcuser -- cat /run/secrets/db-password >/dev/null")
          machine.succeed("runuser -u svcuser -- cat /run/secrets/api-token >/dev/null")
          seen("app-restart", "db-password-1")
          seen("app-reload", "api-token-1")
          seen("app-static", "static-key")
          seen("app-owner", "owned-cert")
          uid = int(machine.succeed("stat -c %u /proc/$(systemctl show -P MainPID app-restart.service)").strip())
          assert 61184 <= uid <= 65519, f"app-restart runs as uid {uid}, not a dynamic user"

      with subtest("for-users: a secret activated before users exist is alice's password hash"):
          assert prop("secretd-for-users.service", "Result") == "success"
          done = int(prop("secretd-for-users.service", "ExecMainExitTimestampMonotonic"))
          userborn = int(prop("userborn.service", "ExecMainStartTimestampMonotonic"))
          assert 0 < done <= userborn, "secretd-for-users.service did not finish before userborn started"
          check_set({"alice-password": ("root", "root", "400", "alice-password")}, "/run/secrets-for-users")
          assert shadow_sha(machine, "alice") == expected["alice-password"], "alice's shadow hash is not the secret"

      with subtest("early-boot: a DefaultDependencies=no unit reads a secret at start"):
          assert "secretd.service" in prop("vmtest-early.service", "After").split(), "secretd.service is not ordered before vmtest-early"
          assert prop("vmtest-early.service", "Result") == "success"
          done = int(prop("secretd.service", "ExecMainExitTimestampMonotonic"))
          start = int(prop("vmtest-early.service", "ExecMainStartTimestampMonotonic"))
          assert 0 < done <= start, f"vmtest-early started at {start}us, secretd done at {done}us"
          seen("vmtest-early", "wg-key-1")

      with subtest("agenix-password: agenixCompat sets a password from an age secret at first boot"):
          agenix.wait_for_unit("multi-user.target")
          assert shadow_sha(agenix, "bob") == expected["bob-password"], "bob's shadow hash is not the secret"
          agenix.succeed("test \"$(stat -f -c %T /run/agenix.d)\" = ramfs")
          agenix.succeed("test -L /run/agenix")
          got = agenix.succeed("sha256sum </run/agenix/bob-password | cut -d' ' -f1").strip()
          assert got == expected["bob-password"], "/run/agenix/bob-password is not the secret"

      with subtest("symlink-migration: symlink = false replaces the regular file agenix left at path"):
          got = agenix.succeed("stat -c '%F %U:%G %a' /var/lib/app/config").strip()
          assert got == "regular file svcuser:svcgrp 440", f"/var/lib/app/config: {got}"
          got = agenix.succeed("sha256sum </var/lib/app/config | cut -d' ' -f1").strip()
          assert got == expected["static-key"], "/var/lib/app/config is not the secret"
          agenix.succeed("runuser -u svcuser -- cat /var/lib/app/config >/dev/null")

      with subtest("status: healthy, then unhealthy naming a file whose mode changed"):
          machine.succeed("secretd status")
          machine.succeed("chmod 0644 \"$(readlink -f /run/secrets/db-password)\"")
          code, out = machine.execute("secretd status 2>&1")
          assert code != 0, "secretd status exited 0 after chmod"
          assert "db-password" in out, "secretd status does not name db-password"
          machine.succeed("chmod 0400 \"$(readlink -f /run/secrets/db-password)\"")
          machine.succeed("secretd status")

      with subtest("security: systemd-analyze security of the activation units"):
          for unit in ["secretd.service", "secretd-for-users.service"]:
              print(machine.succeed(f"systemd-analyze security {unit} | grep 'Overall exposure level'"))

      with subtest("rotation: a switch restarts and reloads the consumers of changed secrets only"):
          before, count, generation = ids(), reloads(), live()
          machine.succeed("${switchTo "rotated"}")
          assert live() != generation, "/run/secrets still points to the old generation"
          check_set(v2)
          machine.wait_until_succeeds(f"test \"$(systemctl show -P InvocationID app-restart.service)\" != {before['app-restart']}")
          machine.wait_for_unit("app-restart.service")
          seen("app-restart", "db-password-2")
          machine.wait_until_succeeds(f"test \"$(cat /run/app-reload.reloads | wc -l)\" = {count + 1}")
          after = ids()
          for unit in ["app-reload", "app-static", "app-owner"]:
              assert after[unit] == before[unit], f"{unit} was restarted"

      with subtest("owner-mode: a change of mode alone restarts the consumer"):
          before, count = ids(), reloads()
          machine.succeed("${switchTo "mode-changed"}")
          check_set(v3)
          machine.wait_until_succeeds(f"test \"$(systemctl show -P InvocationID app-owner.service)\" != {before['app-owner']}")
          machine.wait_for_unit("app-owner.service")
          after = ids()
          for unit in ["app-restart", "app-reload", "app-static"]:
              assert after[unit] == before[unit], f"{unit} was restarted"
          assert reloads() == count, "app-reload was reloaded"

      with subtest("failure: an undecryptable secret fails the unit and keeps the live generation"):
          before, generation = ids(), live()
          machine.fail("${switchTo "broken"}")
          assert prop("secretd.service", "ActiveState") == "failed"
          machine.wait_until_succeeds("journalctl -b -u secretd.service -o cat | grep -q undecryptable-token")
          assert live() == generation, "/run/secrets moved to another generation"
          machine.fail("test -e /run/secrets/undecryptable-token")
          check_set(v3)
          after = ids()
          for unit in before:
              assert after[unit] == before[unit], f"{unit} was restarted"
              assert prop(f"{unit}.service", "ActiveState") == "active", f"{unit} stopped"
          machine.succeed("${switchTo "mode-changed"}")
          assert prop("secretd.service", "Result") == "success"

      with subtest("switch-rerun: a switch with the same manifest rereads a changed file outside the store"):
          before, generation = ids(), live()
          runs, early = prop("secretd.service", "InvocationID"), prop("vmtest-early.service", "InvocationID")
          assert prop("secretd.service", "ActiveState") == "inactive", "secretd.service stays active"
          machine.succeed("install -m 0644 /etc/vmtest/wg-key-2.age ${wgKeyFile}")
          machine.succeed("${switchTo "mode-changed"}")
          assert prop("secretd.service", "InvocationID") != runs, "secretd.service did not run again"
          assert prop("secretd.service", "Result") == "success"
          assert live() != generation, "/run/secrets still points to the old generation"
          check_set(switched)
          machine.wait_until_succeeds(f"test \"$(systemctl show -P InvocationID vmtest-early.service)\" != {early}")
          seen_now("vmtest-early", "wg-key-2")
          after = ids()
          for unit in before:
              assert after[unit] == before[unit], f"{unit} was restarted"

      with subtest("reboot: the ramfs starts empty and activation starts over cleanly"):
          machine.shutdown()
          machine.start()
          machine.wait_for_unit("multi-user.target")
          machine.succeed("grep -qx 'generations=0 secrets=absent' /run/vmtest/probe")
          machine.succeed("test \"$(stat -f -c %T /run/secrets.d)\" = ramfs")
          count = machine.succeed("find /run/secrets.d -mindepth 1 -maxdepth 1 -type d -regex '.*/[0-9]+' | wc -l").strip()
          assert count == "1", f"{count} generations after a reboot"
          # The boot entry is the base configuration, whatever was switched to at run time; wg-key's
          # file keeps what the switch-rerun scenario wrote.
          check_set(dict(v1, **{"wg-key": switched["wg-key"]}))
          seen("vmtest-early", "wg-key-2")
          machine.wait_for_unit("app-restart.service")
          seen("app-restart", "db-password-1")
          machine.succeed("secretd status")
    '';
}
