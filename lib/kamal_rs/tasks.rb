# Rake tasks for an app's Rakefile: `require "kamal_rs/tasks"`.
# Options come as task arguments or environment variables (DESTINATION, VERSION, CONFIG_FILE).
require "kamal_rs"
require "rake"

namespace :kamal_rs do
  desc "Show the resolved deploy config, as `kamal config` does"
  task :config, [ :destination ] do |_task, args|
    config = KamalRs.config(config_file: ENV["CONFIG_FILE"], destination: args[:destination] || ENV["DESTINATION"])
    puts config.to_yaml
  end
end
