require "kamal_rs/version"
require "kamal_rs/errors"
require "kamal_rs/yaml_object"

require "kamal_rs/extension"

# The platform gem's build for this Ruby, else the one extconf.rb or `rake compile` made; a clear
# KamalRs::ExtensionLoadError when neither fits.
KamalRs::Extension.load!

require "kamal_rs/options"
require "kamal_rs/erb_context"
require "kamal_rs/configuration"
require "kamal_rs/deploy"

# Kamal's deploy and redeploy from the same config/deploy.yml, with a Rust core.
module KamalRs
  # The JSON Schema of the events file (`--events FILE`, `KAMAL_RS_EVENTS`): one object per line.
  EVENTS_SCHEMA = File.expand_path("kamal_rs/events.schema.json", __dir__)

  # The resolved configuration, as `kamal-rs config` prints it.
  def self.config(config_file: nil, destination: nil, version: nil)
    Configuration.create_from(config_file: config_file, destination: destination, version: version)
  end
end
