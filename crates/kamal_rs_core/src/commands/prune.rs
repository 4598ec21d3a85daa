//! `prune:all` (deploy only): stopped containers beyond `retain_containers`, then unused images.

pub fn containers(service: &str, retain: i64) -> String {
    format!(
        "docker ps -q -a --filter label=service={service} --filter status=created --filter status=exited --filter status=dead | tail -n +{} | while read container_id; do docker rm $container_id; done",
        retain + 1
    )
}

pub fn dangling_images(service: &str) -> String {
    format!("docker image prune --force --filter label=service={service}")
}

pub fn tagged_images(service: &str, repository: &str, latest_tag: &str) -> String {
    format!(
        "docker image ls --filter label=service={service} --format '{{{{.ID}}}} {{{{.Repository}}}}:{{{{.Tag}}}}' | grep -v -w \"$(docker container ls -a --format '{{{{.Image}}}}\\|' --filter label=service={service} | tr -d '\\n'){repository}:{latest_tag}\\|{repository}:<none>\" | while read image tag; do docker rmi $tag; done"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_lines_match_the_recorded_run() {
        assert_eq!(containers("app", 5), "docker ps -q -a --filter label=service=app --filter status=created --filter status=exited --filter status=dead | tail -n +6 | while read container_id; do docker rm $container_id; done");
        assert_eq!(
            tagged_images("app", "10.213.0.1:5000/app", "latest"),
            "docker image ls --filter label=service=app --format '{{.ID}} {{.Repository}}:{{.Tag}}' | grep -v -w \"$(docker container ls -a --format '{{.Image}}\\|' --filter label=service=app | tr -d '\\n')10.213.0.1:5000/app:latest\\|10.213.0.1:5000/app:<none>\" | while read image tag; do docker rmi $tag; done"
        );
    }
}
