//! One (host, role) boot of a Kamal 2 config as one remote script. Kamal sends each of these commands
//! on its own (`lib/kamal/cli/app/boot.rb`, `lib/kamal/cli/app.rb#stale_containers`, Kamal 2.12.0);
//! here they run in Kamal's order with the same effect:
//!
//! 1. stale containers: every running version of the role except the current one is stopped;
//! 2. a container already named for the new version is renamed `V_replaced_<hex>` (audited);
//! 3. the current (old) version is read again;
//! 4. assets are extracted and synced (proxy roles with `asset_path`);
//! 5. `Booted app version V` is audited, the env file written (mode 0600, contents on stdin: secrets
//!    never appear in a command line), and the container started with Kamal's `docker run`;
//! 6. proxy roles: kamal-proxy deploys it (health-gated), then the old container is stopped.

use base64::Engine;

use crate::commands::app::App;
use crate::commands::auditor::Auditor;
use crate::commands::server::ensure_directory;
use crate::commands::single_quote;
use crate::output::timeline::Phase;
use crate::runner::script::{guard, Exit, Mark, Script, Shown};

/// Stands for the container ID in `kamal-proxy deploy --target`, which only the host knows.
const CID: &str = "KAMALRSCONTAINERID";

pub struct BootScript<'a> {
    pub app: &'a App<'a>,
    pub auditor: &'a Auditor<'a>,
    pub host: &'a str,
    pub version: &'a str,
    pub recorded_at: &'a str,
    pub hostname: &'a str,
    pub replaced_suffix: &'a str,
    /// The env file's contents (sent on stdin).
    pub env_file: &'a str,
    /// Custom TLS certificate and key (sent on stdin after the env file).
    pub tls: Option<(&'a str, &'a str)>,
    /// Error pages to write (`error_pages_path`): (file name, contents), on this host's first role.
    pub error_pages: &'a [(String, Vec<u8>)],
    /// The role's container list is already being read, in the background, into the file `$ps_out`
    /// (`list_in_background`).
    pub listed_in_background: bool,
    /// Running versions other than the current one are stopped first (deploy and redeploy; a
    /// rollback boots the version alone, as Kamal's `app:boot`).
    pub stop_stale: bool,
    /// The host's last boot, with the tag after it in the same script: `kamal-rs:booted` is said once
    /// kamal-proxy serves the new container, so the wait for the other hosts overlaps the old
    /// container's stop (whose result Kamal ignores too: `raise_on_non_zero_exit: false`).
    pub announces_booted: bool,
}

/// Starts reading the role's containers (`docker ps -a`) into a temporary file, in the background:
/// the list does not depend on what the script does next (kamal-proxy, the wait at the pull barrier),
/// so the two overlap. The file is removed when it has been read, or when the script ends: the trap
/// is set first, so that Ctrl-C's SIGTERM arriving while `mktemp` runs still finds it. `phase`: the
/// step it is shown in (stale containers; a rollback's check).
pub fn list_in_background(app: &App<'_>, phase: Phase) -> Script {
    let mut s = Script::new();
    let list = app.containers_with_state();
    let marked = s.marked(
        Shown::info(phase, &list).in_background(),
        &format!("{list} >\"$ps_out\""),
    );
    s.line(format!(
        "trap '[ -z \"$ps_out\" ] || rm -f \"$ps_out\"' EXIT; ps_out=$(mktemp) || {}; {marked} </dev/null & ps_pid=$!",
        Exit::Pull.exit(),
    ));
    s
}

impl BootScript<'_> {
    pub fn build(&self) -> Script {
        let app = self.app;
        let mut s = Script::new();
        self.old_version(&mut s);
        if let Some(asset_path) = app.asset_path() {
            self.assets(&mut s, asset_path.split(':').next().unwrap_or(&asset_path));
        }
        self.start(&mut s);
        if app.running_proxy() {
            self.deploy_and_stop_old(&mut s);
        } else {
            s.line(Mark::Started.echo());
        }
        s
    }

    /// The step of the role's own containers: stale ones (deploy, redeploy) or a rollback's boot.
    fn list_phase(&self) -> Phase {
        if self.stop_stale {
            Phase::Stale
        } else {
            Phase::Boot
        }
    }

    /// Steps 1–3: the role's containers, stale ones stopped, a clashing name renamed, `$old` set.
    fn old_version(&self, s: &mut Script) {
        let app = self.app;
        let (v, prefix) = (self.version, app.container_prefix());
        let replaced = format!("{v}_replaced_{}", self.replaced_suffix);
        let phase = self.list_phase();
        if self.listed_in_background {
            // Read by the shell itself (`read` is a builtin): no `cat`, no subshell.
            s.line(
                "wait $ps_pid; containers=; while read -r n st; do containers=\"$containers $n $st\"; done <\"$ps_out\"; rm -f \"$ps_out\"; ps_out=",
            );
        } else {
            let list = app.containers_with_state();
            s.run(Shown::info(phase, &list), &format!("containers=$({list})"));
        }
        let current = s.marked(
            Shown::info(phase, app.current_running_version()),
            &app.current_version_into_old(),
        );
        // With exactly one running (or restarting) container, that one is the current version whatever
        // its image, as both of Kamal's queries return it; with none, there is none. Only several
        // running containers need the `latest`-image preference.
        //
        // `$containers` holds `name state` pairs; they are walked with builtins only (no subshell, no
        // `grep`): on a fleet every process a host's script starts is paid once per host. Container
        // names and states never hold blanks or glob characters. Found: the running ones (`$live`, the
        // last of them; `$nlive`), the running, restarting or paused ones (`$stale`, as versions: Kamal's
        // `docker ps` without `-a` lists those three) and whether the new version's name is taken
        // (`$clash`, in any state, as `docker ps -a` lists it).
        s.line(format!(
            "live=; nlive=0; stale=; clash=; n=; for w in $containers; do if [ -z \"$n\" ]; then n=$w; continue; fi; \
             case \"$w\" in running|restarting) live=$n; nlive=$((nlive + 1)); stale=\"$stale ${{n#{prefix}-}}\";; paused) stale=\"$stale ${{n#{prefix}-}}\";; esac; \
             [ \"$n\" != \"{prefix}-{v}\" ] || clash=1; n=; done; \
             case $nlive in 0) old= ;; 1) old=${{live#{prefix}-}} ;; *) {current} ;; esac"
        ));
        // Running versions other than the current one are stale (Kamal's `docker ps` without `-a`
        // lists running, restarting and paused containers).
        if self.stop_stale {
            let stop = s.marked(
                Shown::info(Phase::Stale, self.stop("stale")).with_var("${stale}"),
                &format!("{} >/dev/null 2>&1", self.stop("stale")),
            );
            s.line(format!(
                "for stale in $stale; do [ \"$stale\" = \"$old\" ] && continue; {}; {stop}; done",
                Mark::Stale.echo_with("$stale"),
            ));
        }
        // After a rename the current version is read again only where Kamal's queries could answer
        // differently: with one running container it is still that one, under its new name if renamed.
        let audit = self.audit(s, &format!("Renaming container {v} to {replaced}"));
        let rename = app.rename(v, &replaced);
        let rename = s.marked(Shown::info(Phase::Boot, &rename), &rename);
        let current = s.marked(
            Shown::info(Phase::Boot, app.current_running_version()),
            &app.current_version_into_old(),
        );
        s.line(format!(
            "if [ -n \"$clash\" ]; then {}; {} && \
             if [ \"$nlive\" -gt 1 ]; then {current}; elif [ \"$old\" = \"{v}\" ]; then old={replaced}; fi; fi",
            Mark::Renamed.echo_with(&replaced),
            guard(&format!("{audit} && {rename}"), Exit::Rename),
        ));
        s.line(Mark::Old.echo_with("$old"));
    }

    /// The role's audit line for `message`, marked in `s` (shown as Kamal writes it).
    fn audit(&self, s: &mut Script, message: &str) -> String {
        let (auditor, at) = (self.auditor, self.recorded_at);
        let role = Some(self.app.role.name.as_str());
        s.marked(
            Shown::debug(Phase::Boot, auditor.record(at, role, message)),
            &auditor.record_in_script(at, role, message),
        )
    }

    /// Step 5: the audit line, the env file (and TLS certificates, error pages), `docker run`.
    fn start(&self, s: &mut Script) {
        let app = self.app;
        let (role, v) = (app.role.name.as_str(), self.version);
        let audit = self.audit(s, &format!("Booted app version {v}"));
        s.line(guard(&audit, Exit::Audit));
        // stdin carries the env file, then the TLS certificate and key: `head -c N` never reads past N.
        let env_file = app.env_file_path();
        let mkdir = s.marked(
            Shown::info(Phase::Boot, app.ensure_env_directory()),
            &ensure_directory(&app.env_directory()),
        );
        let upload = s.marked(
            Shown::upload(Phase::Boot, &env_file),
            &format!(
                "(umask 077 && head -c {} > {env_file}) && chmod 600 {env_file}",
                self.env_file.len()
            ),
        );
        s.line(guard(&format!("{mkdir} && {upload}"), Exit::Files));
        s.feed(self.env_file.as_bytes());
        let sd = app.config.service_and_destination();
        if let Some((cert, key)) = self.tls {
            let dir = format!(".kamal/proxy/apps-config/{sd}/tls/{role}");
            let write = s.marked(
                Shown::upload(Phase::Boot, &format!("{dir}/cert.pem {dir}/key.pem")),
                &format!("{} && head -c {} > {dir}/cert.pem && head -c {} > {dir}/key.pem && chmod 644 {dir}/cert.pem {dir}/key.pem", ensure_directory(&dir), cert.len(), key.len()),
            );
            s.line(format!(
                "{}; {}",
                Mark::Tls.echo(),
                guard(&write, Exit::Files)
            ));
            s.feed(cert.as_bytes()).feed(key.as_bytes());
        }
        if !self.error_pages.is_empty() {
            let dir = format!(".kamal/proxy/apps-config/{sd}/error_pages");
            let mut w = vec![ensure_directory(&format!("{dir}/{v}"))];
            for (name, body) in self.error_pages {
                let b64 = base64::engine::general_purpose::STANDARD.encode(body);
                w.push(format!(
                    "printf '%s' '{b64}' | base64 -d > {dir}/{v}/{name}"
                ));
            }
            // No chmod: Kamal's recursive scp upload leaves the modes the remote umask gives (755
            // and 644 with the usual 022), which the kamal-proxy user can read (Kamal 2.12 on a lab host).
            let write = s.marked(
                Shown::upload(Phase::Boot, &format!("{dir}/{v}")),
                &w.join(" && "),
            );
            s.line(guard(&write, Exit::Files));
        }
        // `docker run --detach` prints the new container's ID: its first 12 characters are what Kamal
        // reads back with `docker container ls --all --filter 'name=^NAME$' --quiet` (cut here by
        // parameter expansion, which needs no subshell).
        let run = app.run(self.host, v, self.hostname);
        let run = s.marked(Shown::info(Phase::Boot, &run), &format!("cid=$({run})"));
        s.line(format!(
            "{}; {run} || {{ rc=$?; {}; {}; }}; case $cid in ????????????*) cid=${{cid%\"${{cid#????????????}}\"}};; esac",
            Mark::Run.echo(),
            Mark::Failed.echo_with("$rc"),
            Exit::Run.exit()
        ));
    }

    /// Step 6 for a proxy role: kamal-proxy deploys the new container, then the old one stops.
    fn deploy_and_stop_old(&self, s: &mut Script) {
        let (app, v) = (self.app, self.version);
        s.line(format!(
            "[ -n \"$cid\" ] || {}; {}",
            Exit::Endpoint.exit(),
            Mark::Container.echo_with("$cid")
        ));
        // The container ID is only known on the host: Kamal's `--target="<id>:<port>"`, filled in there.
        let deploy = app.proxy_deploy(CID, v).replace(CID, "${cid}");
        let deploy = s.marked(
            Shown::info(Phase::Health, &deploy).with_var("${cid}"),
            &deploy,
        );
        s.line(guard(&deploy, Exit::ProxyDeploy));
        s.line(Mark::Healthy.echo());
        if self.announces_booted {
            s.line(Mark::Booted.echo());
        }
        // Kamal's `stop_old_version`: the old container stopped, then (only then) old assets and error
        // pages cleaned up.
        let mut after_old = vec![s.marked(
            Shown::info(Phase::Stop, self.stop("old")).with_var("${old}"),
            &format!("{} >/dev/null 2>&1", self.stop("old")),
        )];
        if app.asset_path().is_some() {
            let cleanup = self.assets_cleanup();
            after_old.push(s.marked(Shown::info(Phase::Stop, &cleanup), &cleanup));
        }
        if app.config.error_pages_path().is_some() {
            let cleanup = format!(
                "find .kamal/proxy/apps-config/{}/error_pages -mindepth 1 -maxdepth 1 ! -name {v} -exec rm -rf {{}} +",
                app.config.service_and_destination()
            );
            after_old.push(s.marked(Shown::info(Phase::Stop, &cleanup), &cleanup));
        }
        s.line(format!(
            "[ -z \"$old\" ] || {{ {}; {}; }}",
            Mark::Stopping.echo_with("$old"),
            after_old.join("; ")
        ));
        s.line(Mark::Done.echo());
    }

    /// Kamal stops `$(docker container ls --all --filter 'name=^NAME$' --quiet)`: the container of
    /// exactly that name, which is what `docker stop NAME` stops, in one docker call instead of two.
    fn stop(&self, var: &str) -> String {
        let t = self
            .app
            .stop_timeout()
            .map(|t| format!(" -t {t}"))
            .unwrap_or_default();
        format!(
            "docker stop{t} \"{}-${{{var}}}\"",
            self.app.container_prefix()
        )
    }

    /// Extract the new version's assets from its image, and cross-copy with the old version's.
    fn assets(&self, s: &mut Script, path: &str) {
        let app = self.app;
        let (role, v) = (app.role.name.as_str(), self.version);
        let base = format!(
            ".kamal/apps/{}/assets",
            app.config.service_and_destination()
        );
        let helper = format!("{}-assets", app.container_prefix());
        let image = format!("{}:{v}", app.config.repository());
        let extract = format!(
            "mkdir -p {base}/extracted/{role}-{v} && docker container rm {helper} 2> /dev/null || true && docker container create --name {helper} {image} && docker container cp -L {helper}:{path}/. {base}/extracted/{role}-{v} && docker container rm {helper}"
        );
        let extract = s.marked(
            Shown::info(Phase::Boot, &extract),
            &format!("{{ {extract}; }} >/dev/null"),
        );
        s.line(guard(&extract, Exit::Assets));
        // Kamal's `sync_asset_volumes`: one command, with the cross-copies when there is an old version.
        let volume = format!("{base}/volumes/{role}-{v}");
        let copy = format!("cp -rnT {base}/extracted/{role}-{v} {volume}");
        let (sync, sync_run) = (
            format!("mkdir -p {volume} ; {copy}"),
            format!("{} ; {copy}", ensure_directory(&volume)),
        );
        let crossed = format!(
            " ; cp -rnT {base}/extracted/{role}-{v} {base}/volumes/{role}-${{old}} || true ; cp -rnT {base}/extracted/{role}-${{old}} {volume} || true"
        );
        let cross = s.marked(
            Shown::info(Phase::Boot, format!("{sync}{crossed}")).with_var("${old}"),
            &format!("{sync_run}{crossed}"),
        );
        let alone = s.marked(Shown::info(Phase::Boot, &sync), &sync_run);
        s.line(format!(
            "if [ -n \"$old\" ]; then {cross}; else {alone}; fi"
        ));
    }

    fn assets_cleanup(&self) -> String {
        let (role, v) = (self.app.role.name.as_str(), self.version);
        let base = format!(
            ".kamal/apps/{}/assets",
            self.app.config.service_and_destination()
        );
        let pattern = single_quote(&format!("{role}-*"));
        format!(
            "find {base}/extracted -maxdepth 1 -name {pattern} ! -name {role}-{v} -exec rm -rf \"{{}}\" + ; find {base}/volumes -maxdepth 1 -name {pattern} ! -name {role}-{v} -exec rm -rf \"{{}}\" +"
        )
    }
}
