#!/usr/bin/env ruby
# Mint a scopegate SSO token for the customer logged in to your site.
# Ruby standard library only (openssl, json, base64, time, optparse).
#
# v2 (use this one; authenticated):
#   key32 = HMAC-SHA256(key=secure_key, msg="scopegate-sso-v2:" + company_id)
#   nonce = 12 fresh random bytes per token (never reuse one under a key)
#   token = "v2." + base64url_no_padding(nonce[12] || ciphertext || tag[16])
#           where ciphertext, tag = AES-256-GCM(key32, nonce, json, no AAD)
# Legacy (migration only; no MAC, ciphertext bits can be flipped):
#   key16 = SHA1(secure_key + company_id)[0, 16]
#   token = urlencode(base64(AES-128-CBC(key16, iv=16 zero bytes, PKCS#7(json))))
# json = {first_name, last_name, email, expires, [mobile], [reference]}
#
#   SSO_SECURE_KEY=... ruby sso_token.rb COMPANY_ID [--legacy] \
#       --email E --first-name F --last-name L [--mobile M] [--reference R] [--ttl S]
require 'openssl'
require 'json'
require 'base64'
require 'time'
require 'optparse'

module SsoToken
  # The customer's fields plus expires = now + ttl, UTC, e.g. 2027-01-15T09:00:00Z.
  def self.payload(customer_hash, ttl_seconds, now)
    expires = Time.at((now || Time.now).to_i + Integer(ttl_seconds)).utc.iso8601
    JSON.generate(customer_hash.transform_keys(&:to_s).merge('expires' => expires))
  end

  def self.mint_v2(company_id, secure_key, customer_hash, ttl_seconds: 3600, now: nil)
    key32 = OpenSSL::HMAC.digest('SHA256', secure_key.b, "scopegate-sso-v2:#{company_id}".b)
    nonce = OpenSSL::Random.random_bytes(12) # CSPRNG, fresh for every token
    gcm = OpenSSL::Cipher.new('aes-256-gcm').encrypt
    gcm.key = key32
    gcm.iv = nonce
    ct = gcm.update(payload(customer_hash, ttl_seconds, now)) + gcm.final
    'v2.' + Base64.urlsafe_encode64(nonce + ct + gcm.auth_tag(16), padding: false)
  end

  def self.mint_legacy(company_id, secure_key, customer_hash, ttl_seconds: 3600, now: nil)
    cbc = OpenSSL::Cipher.new('aes-128-cbc').encrypt # PKCS#7 padding by default
    cbc.key = OpenSSL::Digest::SHA1.digest("#{secure_key}#{company_id}")[0, 16]
    cbc.iv = "\0" * 16
    b64 = Base64.strict_encode64(cbc.update(payload(customer_hash, ttl_seconds, now)) + cbc.final)
    b64.gsub(/[+\/=]/) { |c| format('%%%02X', c.ord) } # + / = percent-encoded, once
  end
end

if $PROGRAM_NAME == __FILE__
  env = ->(n) { ENV["SSO_#{n.upcase.tr('-', '_')}"] }
  o = %w[email first-name last-name mobile reference ttl].to_h { |n| [n, env.(n)] }
  legacy = false
  args = OptionParser.new do |p|
    p.banner = 'usage: sso_token.rb COMPANY_ID [--legacy] --email E --first-name F --last-name L ...'
    p.on('--legacy', 'old format, migration only') { legacy = true }
    o.each_key { |n| p.on("--#{n} VALUE") { |v| o[n] = v } }
  end.parse(ARGV)
  secure_key = ENV['SSO_SECURE_KEY'] # never on the command line
  abort 'usage: sso_token.rb COMPANY_ID [--legacy] --email E ...' unless args.size == 1
  abort 'set SSO_SECURE_KEY in the environment' if secure_key.to_s.empty?
  abort '--email, --first-name and --last-name are required' if %w[email first-name last-name].any? { |n| o[n].to_s.empty? }
  customer = { first_name: o['first-name'], last_name: o['last-name'], email: o['email'] }
  customer[:mobile] = o['mobile'] if o['mobile']
  customer[:reference] = o['reference'] if o['reference']
  mint = legacy ? :mint_legacy : :mint_v2
  puts SsoToken.public_send(mint, args[0], secure_key, customer, ttl_seconds: Integer(o['ttl'] || 3600))
end
