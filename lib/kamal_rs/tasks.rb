# Rake tasks for an app's Rakefile: `require "kamal_rs/tasks"`.
#
#   rake "kamal_rs:deploy[staging,v42]"          # task arguments: destination, version
#   DESTINATION=staging VERSION=v42 SKIP_PUSH=1 rake kamal_rs:redeploy
#
# Environment variables: DESTINATION, VERSION, SKIP_PUSH=1, HOSTS, ROLES, CONFIG_FILE, LOCK_WAIT=1, QUIET=1, VERBOSE=1.
require "kamal_rs"
require "rake"

module KamalRs
  module Tasks
    def self.options(args)
      flag = ->(name) { %w[1 true yes].include?(ENV[name].to_s.downcase) }
      { config_file: ENV["CONFIG_FILE"], destination: args[:destination] || ENV["DESTINATION"],
        version: args[:version] || ENV["VERSION"], skip_push: flag.("SKIP_PUSH"), hosts: ENV["HOSTS"], roles: ENV["ROLES"],
        lock_wait: flag.("LOCK_WAIT"), quiet: flag.("QUIET"), verbose: flag.("VERBOSE") }
    end
  end
end

namespace :kamal_rs do
  desc "Show the resolved deploy config, as `kamal config` does"
  task :config, [ :destination ] do |_task, args|
    config = KamalRs.config(config_file: ENV["CONFIG_FILE"], destination: args[:destination] || ENV["DESTINATION"])
    puts config.to_yaml
  end

  desc "Deploy the app, as `kamal deploy` does"
  task :deploy, [ :destination, :version ] do |_task, args|
    KamalRs.deploy(**KamalRs::Tasks.options(args))
  end

  desc "Redeploy the app (no proxy boot, no prune), as `kamal redeploy` does"
  task :redeploy, [ :destination, :version ] do |_task, args|
    KamalRs.redeploy(**KamalRs::Tasks.options(args))
  end
end
