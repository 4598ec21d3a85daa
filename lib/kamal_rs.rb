require "kamal_rs/version"
require "kamal_rs/errors"
require "kamal_rs/yaml_object"

begin
  # Installed gem: extconf.rb put the extension here. Development: `rake compile` did.
  require "kamal_rs/kamal_rs"
rescue LoadError => e
  raise LoadError, "kamal_rs: the native extension is not built (#{e.message}). Run `rake compile`, or install the gem."
end

require "kamal_rs/options"
require "kamal_rs/erb_context"
require "kamal_rs/configuration"
require "kamal_rs/deploy"

# Kamal's deploy and redeploy from the same config/deploy.yml, with a Rust core.
module KamalRs
  # The resolved configuration, as `kamal-rs config` prints it.
  def self.config(config_file: nil, destination: nil, version: nil)
    Configuration.create_from(config_file: config_file, destination: destination, version: version)
  end
end
