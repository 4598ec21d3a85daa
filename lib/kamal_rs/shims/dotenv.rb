# kamal_rs's stand-in for the dotenv gem, used only when a config's ERB needs dotenv and the gem is
# not installed: its module functions, with dotenv's parsing rules (the native core's parser).
module Dotenv
  module_function

  def parse(*files)
    files = [ ".env" ] if files.empty?
    files.each_with_object({}) do |file, values|
      next unless File.exist?(file)

      KamalRs::Native.parse_dotenv(File.read(file)).each { |key, value| values[key] = value }
    end
  end

  # Sets what ENV does not have yet.
  def load(*files)
    parse(*files).each { |key, value| ENV[key] ||= value }
  end

  def load!(*files)
    missing = (files.empty? ? [ ".env" ] : files).reject { |f| File.exist?(f) }
    raise Errno::ENOENT, missing.first if missing.any?

    load(*files)
  end

  # Replaces what ENV has.
  def overload(*files)
    parse(*files).each { |key, value| ENV[key] = value }
  end

  def overload!(*files)
    missing = (files.empty? ? [ ".env" ] : files).reject { |f| File.exist?(f) }
    raise Errno::ENOENT, missing.first if missing.any?

    overload(*files)
  end
end
