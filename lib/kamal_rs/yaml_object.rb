module KamalRs
  # Prints in YAML as `!ruby/object:<class>` with the given instance variables, as the real object
  # would. `kamal config` shows Net::SSH proxy objects this way; kamal_rs does not load net-ssh.
  class YamlObject
    attr_reader :class_name, :ivars

    def initialize(class_name, ivars)
      @class_name = class_name
      @ivars = ivars
    end

    def encode_with(coder)
      coder.tag = "!ruby/object:#{class_name}"
      ivars.each { |name, value| coder[name] = value }
    end
  end
end
