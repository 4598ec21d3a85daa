module KamalRs
  # Every failure kamal_rs raises is a KamalRs::Error.
  class Error < StandardError; end

  # The config is invalid (Kamal's Kamal::ConfigurationError).
  class ConfigurationError < Error; end

  # Where Kamal raises a plain ArgumentError (for example "You must specify a destination").
  class ArgumentError < Error; end

  # Where Kamal raises a plain RuntimeError (for example "Configuration file not found in ...").
  class RuntimeError < Error; end
end
