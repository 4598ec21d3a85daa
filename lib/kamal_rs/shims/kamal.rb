# kamal_rs's stand-in for what a config's ERB uses of Kamal, when the kamal gem is not installed
# (Kamal renders deploy.yml with itself loaded). Written here from Kamal's documented behaviour.
module Kamal
  VERSION = KamalRs::KAMAL_VERSION

  class ConfigurationError < StandardError; end

  module Utils
    module_function

    # The local Docker's architecture in Kamal's words (`docker info`): arm64, amd64, or as Docker says.
    def docker_arch
      arch = `docker info --format '{{.Architecture}}'`.strip
      case arch
      when /aarch64/ then "arm64"
      when /x86_64/ then "amd64"
      else arch
      end
    end
  end
end
