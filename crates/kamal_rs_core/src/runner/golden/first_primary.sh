trap 'echo "kamal-rs:interrupted"; [ -z "$bg" ] || kill $bg 2>/dev/null; exit 130' TERM; echo "kamal-rs:pid $$"
echo "kamal-rs:lock"; { mkdir -p .kamal && mkdir .kamal/lock-app-staging && echo "TG9ja2VkIGJ5OiBEZXBsb3llciBhdCAyMDI2LTEyLTAxVDEwOjAwOjAwWgpW
ZXJzaW9uOiB2MgpNZXNzYWdlOiBBdXRvbWF0aWMgZGVwbG95IGxvY2s=
" > .kamal/lock-app-staging/details; } </dev/null || exit 77; echo "kamal-rs:locked"
trap '[ -z "$ps_out" ] || rm -f "$ps_out"' EXIT; ps_out=$(mktemp) || exit 78; docker ps -a --filter label=service=app --filter label=destination=staging --filter label=role=web --format '{{.Names}} {{.State}}' >"$ps_out" </dev/null & ps_pid=$!
{ { echo "kamal-rs:login" && { grep -A1 -F '"registry.example.com": {' ~/.docker/config.json 2>/dev/null | grep -qF '"auth": "dXNlcjpwYXNz"' || docker login registry.example.com -u "user" -p "pass"; } && echo "kamal-rs:audit" && mkdir -p .kamal && echo "[2026-12-01T10:00:00Z] [deployer@example.com] [staging] Pulled image with version v2" >> .kamal/app-staging-audit.log && echo "kamal-rs:pull" && { docker pull registry.example.com/app:v2 </dev/null & bg=$!; wait $bg; } && echo "kamal-rs:label" && { docker image inspect -f '{{ .Config.Labels.service }}' registry.example.com/app:v2 | grep -x app || (echo "Image registry.example.com/app:v2 is missing the 'service' label" && exit 1); }; } </dev/null; } || { rc=$?; echo "kamal-rs:failed $rc"; exit 78; }
echo "kamal-rs:proxy-boot"; { ( out=$(docker network create kamal 2>&1) || case "$out" in *"already exists"*) ;; *) echo "$out" >&2; exit 1 ;; esac
docker login registry.example.com -u "user" -p "pass" >/dev/null || exit 1
v=$(docker inspect kamal-proxy --format '{{.Config.Image}}' | awk -F: '{print $NF}'); echo "kamal-rs:proxy-version $v"
if [ -n "$v" ] && [ "$(printf '%s\n' "${v#v}" 0.9.2 | sort -V | head -n1)" != 0.9.2 ]; then exit 90; fi
mkdir -p .kamal/proxy/apps-config && { docker container start kamal-proxy || echo $(cat .kamal/proxy/options 2> /dev/null || echo "--publish 80:80 --publish 443:443 --log-opt max-size=10m") $(cat .kamal/proxy/image 2> /dev/null || echo "basecamp/kamal-proxy"):$(cat .kamal/proxy/image_version 2> /dev/null || echo "v0.9.2") $(cat .kamal/proxy/run_command 2> /dev/null || echo "") | xargs docker run --name kamal-proxy --network kamal --detach --restart unless-stopped --volume kamal-proxy-config:/home/kamal-proxy/.config/kamal-proxy --volume $PWD/.kamal/proxy/apps-config:/home/kamal-proxy/.apps-config; }
) </dev/null; } || { rc=$?; echo "kamal-rs:failed $rc"; exit 79; }
echo "kamal-rs:ready"; read -r go || go=stop; [ "$go" = go ] || { echo "kamal-rs:halted"; exit 85; }
trap '' TERM; echo "kamal-rs:boot"
