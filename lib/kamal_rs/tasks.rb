# Rake tasks for an app's Rakefile: `require "kamal_rs/tasks"`.
#
#   rake "kamal_rs:deploy[staging,v42]"          # task arguments: destination, version
#   DESTINATION=staging VERSION=v42 SKIP_PUSH=1 rake kamal_rs:redeploy
#   rake "kamal_rs:rollback[staging,v41]"        # without a version: the newest one still on every host
#
# Every option of `kamal-rs deploy` is an environment variable of its name in capitals
# (KamalRs::Options): DESTINATION, VERSION, SKIP_PUSH=1, NO_CACHE=1, HOSTS, ROLES, CONFIG_FILE,
# LOCK_WAIT=1, QUIET=1, VERBOSE=1, MAX_FAIL=2%, ... A run that left hosts behind within MAX_FAIL
# exits 3, as `kamal-rs` does.
require "kamal_rs"
require "rake"

module KamalRs
  module Tasks
    # Hosts left behind within MAX_FAIL: the task exits 3 (the run printed them and the command that
    # finishes the job).
    def self.finish(result)
      exit 3 unless result.complete?
    end
  end
end

namespace :kamal_rs do
  desc "Show the resolved deploy config, as `kamal config` does"
  task :config, [ :destination ] do |_task, args|
    options = KamalRs::Options.from_env(args.to_h).slice(*KamalRs::Options::CONFIG_NAMES)
    puts KamalRs.config(**options).to_yaml
  end

  desc "Deploy the app, as `kamal deploy` does"
  task :deploy, [ :destination, :version ] do |_task, args|
    KamalRs::Tasks.finish(KamalRs.deploy(**KamalRs::Options.from_env(args.to_h)))
  end

  desc "Redeploy the app (no proxy boot, no prune), as `kamal redeploy` does"
  task :redeploy, [ :destination, :version ] do |_task, args|
    KamalRs::Tasks.finish(KamalRs.redeploy(**KamalRs::Options.from_env(args.to_h)))
  end

  desc "Roll back to a version whose containers are still on the servers, as `kamal rollback` does"
  task :rollback, [ :destination, :version ] do |_task, args|
    KamalRs::Tasks.finish(KamalRs.rollback(**KamalRs::Options.from_env(args.to_h)))
  end
end
