#!/usr/bin/env ruby
# Regenerates tests/fixtures/fluentd-time.tsv: the event-time text Fluentd writes, computed by the
# real Ruby with the expressions of Fluentd's lib/fluent/time.rb (TimeFormatter,
# NumericTimeFormatter#format_float, Fluent::Timezone.formatter) and plugin_helper/inject.rb.
# Run on a host in UTC, as the component's "local time" is:  TZ=UTC ruby scripts/fluentd-time.rb
require 'time'

abort 'run with TZ=UTC' unless Time.now.utc_offset.zero?

# Fluentd's NumericTimeFormatter#format_float, as it is (it replaces short nanoseconds by zeros),
# given a Fluent::EventTime, whose #sec is the seconds since the epoch.
EventTime = Struct.new(:sec, :nsec)
def format_float(time)
  nsec_s = time.nsec.to_s
  nsec_s = '0' * (9 - nsec_s.size) if nsec_s.size < 9
  "#{time.sec}.#{nsec_s}"
end

cases = {
  # time_format nil: localtime (the default) => Time#iso8601; utc => Time#utc.iso8601.
  'iso8601 local' => ->(t) { t.iso8601 },
  'iso8601 utc' => ->(t) { t.utc.iso8601 },
  # timezone given: Fluent::Timezone.formatter => time.localtime(offset).
  'iso8601 +09:00' => ->(t) { t.localtime('+09:00').iso8601 },
  'iso8601 -0530' => ->(t) { t.localtime('-05:30').iso8601 },
  'iso8601 UTC' => ->(t) { t.localtime(0).iso8601 },
  'strftime local %Y-%m-%dT%H:%M:%S.%N%z %Z' => ->(t) { t.strftime('%Y-%m-%dT%H:%M:%S.%N%z %Z') },
  'strftime utc %Y-%m-%dT%H:%M:%S.%3N%:z %Z' => ->(t) { t.utc.strftime('%Y-%m-%dT%H:%M:%S.%3N%:z %Z') },
  'strftime +09:00 %d/%b/%Y:%H:%M:%S %z %Z' => ->(t) { t.localtime('+09:00').strftime('%d/%b/%Y:%H:%M:%S %z %Z') },
  'float' => ->(t) { format_float(EventTime.new(t.to_i, t.nsec)) },
  'unixtime' => ->(t) { t.to_i.to_s },
  # inject time_type float: time.to_r.truncate(+6).to_f (compared as a number).
  'inject float' => ->(t) { t.to_r.truncate(6).to_f.to_s },
}

times = [
  [1_709_211_909, 0], [1_709_211_909, 5], [1_709_211_909, 500_000_000],
  [1_709_211_909, 123_456_789], [1_709_211_909, 12_345_678], [1_709_211_909, 999_999_999],
  [0, 1_000], [951_782_400, 100_000_000], [4_102_444_799, 999_999], [1_700_000_000, 1]
]

path = File.join(__dir__, '..', 'tests', 'fixtures', 'fluentd-time.tsv')
File.open(path, 'w') do |out|
  out.puts "# case\tseconds\tnanoseconds\tFluentd's text (#{RUBY_DESCRIPTION}; regenerate with scripts/fluentd-time.rb)"
  cases.each do |name, f|
    times.each do |sec, nsec|
      out.puts [name, sec, nsec, f.call(Time.at(sec, nsec, :nsec))].join("\t")
    end
  end
end
