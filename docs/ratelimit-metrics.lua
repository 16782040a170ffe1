-- INFO ratelimit as name/value pairs, for redis_exporter's `-script` option (run with
-- `-lua-script-read-only`, i.e. EVAL_RO): each field becomes
-- redis_script_values{key="ratelimit_<field>",script="ratelimit-metrics.lua"}.
local out = {}
for name, value in string.gmatch(redis.call('INFO', 'ratelimit'), '(ratelimit_[%w_]+):(%d+)') do
  out[#out + 1] = name
  out[#out + 1] = value
end
return out
