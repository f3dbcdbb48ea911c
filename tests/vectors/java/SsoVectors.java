/*
 * BookingBug legacy SSO interop vectors, minted by a JDK-only port of the
 * vendor's Java TokenGenerator (vendor-docs 004; spec credentials.md section 4).
 * It is independent of scopegate's Rust decoder and of the Python vectors.
 *
 * The vendor's steps, kept as they are:
 *   key   = first 16 bytes of SHA-1(secureKey + companyId)
 *   data  = json.toString() bytes, first 16 bytes XORed with "OpenSSL for Ruby"
 *   token = URL-encode(base64(AES/CBC/PKCS5Padding(data, key, IV = "OpenSSL for Ruby")))
 *
 * What the vendor's libraries did is reproduced with the JDK:
 *   - org.json.simple.JSONObject: a HashMap (so HashMap key order) printed as
 *     {"k":v,...} with json-simple's escaping ('/' as "\/", U+0000-001F,
 *     U+007F-009F and U+2000-20FF as uppercase \\uXXXX).
 *   - commons-codec `new Base64().encode(..)`: 1.5+ does not chunk; 1.4 chunked
 *     at 76 characters with CRLF after every line, the last one included. Both
 *     shapes are minted, plus the JDK's own MIME encoder (CRLF between lines).
 *   - commons-codec URLCodec("ASCII"): the same safe set as java.net.URLEncoder.
 *   - DigestUtils.sha(String) hashes UTF-8, as here. `getBytes()` on the JSON
 *     uses the platform charset in the vendor's code; UTF-8 is used here (the
 *     Ruby and C# generators' encoding, and the JDK 18+ default).
 *   - The clock is fixed: "now" is 1800000000 (2027-01-15T08:00:00Z).
 *
 * Run through ../make_java_sso_vectors.sh, which writes ../sso_java.json.
 */

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.PrintStream;
import java.net.URLEncoder;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.text.SimpleDateFormat;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.Date;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TimeZone;

import javax.crypto.BadPaddingException;
import javax.crypto.Cipher;
import javax.crypto.CipherOutputStream;
import javax.crypto.spec.IvParameterSpec;
import javax.crypto.spec.SecretKeySpec;

public final class SsoVectors {
    static final long NOW = 1_800_000_000L; // 2027-01-15T08:00:00Z
    static final String COMPANY_ID = "41882";
    static final String SECURE_KEY = "jdkPort7Qx2mSecureKey41882";
    static final byte[] INIT_VECTOR = "OpenSSL for Ruby".getBytes(StandardCharsets.US_ASCII);

    /** How the ciphertext's base64 is laid out. */
    enum Layout {
        /** commons-codec 1.5+ `new Base64()`: one line. */
        SINGLE_LINE,
        /** java.util.Base64.getMimeEncoder(): 76-character lines joined by CRLF. */
        JDK_MIME,
        /** commons-codec 1.4 `new Base64()`: 76-character lines, each ending in CRLF. */
        CODEC_1_4
    }

    /** The JSON object of json-simple: a HashMap, printed in its iteration order. */
    static final class JsonObject extends HashMap<String, Object> {
        JsonObject with(String k, Object v) {
            put(k, v);
            return this;
        }

        @Override
        public String toString() {
            StringBuilder sb = new StringBuilder("{");
            boolean first = true;
            for (Map.Entry<String, Object> e : entrySet()) {
                if (!first) sb.append(',');
                first = false;
                sb.append('"');
                escapeLikeJsonSimple(e.getKey(), sb);
                sb.append("\":");
                Object v = e.getValue();
                if (v == null) {
                    sb.append("null");
                } else if (v instanceof String) {
                    sb.append('"');
                    escapeLikeJsonSimple((String) v, sb);
                    sb.append('"');
                } else {
                    sb.append(v); // Number, Boolean
                }
            }
            return sb.append('}').toString();
        }

        static void escapeLikeJsonSimple(String s, StringBuilder sb) {
            for (int i = 0; i < s.length(); i++) {
                char c = s.charAt(i);
                switch (c) {
                    case '"': sb.append("\\\""); break;
                    case '\\': sb.append("\\\\"); break;
                    case '/': sb.append("\\/"); break;
                    case '\b': sb.append("\\b"); break;
                    case '\f': sb.append("\\f"); break;
                    case '\n': sb.append("\\n"); break;
                    case '\r': sb.append("\\r"); break;
                    case '\t': sb.append("\\t"); break;
                    default:
                        boolean escaped = c <= 0x1F || (c >= 0x7F && c <= 0x9F)
                                || (c >= 0x2000 && c <= 0x20FF);
                        if (escaped) {
                            sb.append(String.format("\\u%04X", (int) c));
                        } else {
                            sb.append(c);
                        }
                }
            }
        }
    }

    /** The vendor's generator, for one company id and secure key. */
    static final class TokenGenerator {
        private final SecretKeySpec secretKeySpec;
        private final IvParameterSpec ivSpec = new IvParameterSpec(INIT_VECTOR);

        TokenGenerator(String companyId, String secureKey) throws Exception {
            byte[] digest = MessageDigest.getInstance("SHA-1")
                    .digest((secureKey + companyId).getBytes(StandardCharsets.UTF_8));
            secretKeySpec = new SecretKeySpec(Arrays.copyOf(digest, 16), "AES");
        }

        /** XOR the first block with the IV, then AES-CBC with the same IV, streamed. */
        byte[] encrypt(byte[] plaintext) throws Exception {
            byte[] data = plaintext.clone();
            for (int i = 0; i < 16; i++) {
                data[i] ^= INIT_VECTOR[i];
            }
            Cipher cipher = Cipher.getInstance("AES/CBC/PKCS5Padding");
            cipher.init(Cipher.ENCRYPT_MODE, secretKeySpec, ivSpec);
            ByteArrayOutputStream sink = new ByteArrayOutputStream();
            InputStream in = new ByteArrayInputStream(data);
            try (OutputStream out = new CipherOutputStream(sink, cipher)) {
                byte[] buf = new byte[1024];
                int n;
                while ((n = in.read(buf)) >= 0) {
                    out.write(buf, 0, n);
                }
            }
            return sink.toByteArray();
        }

        /** The vendor's create(): sets "expires", serializes, encrypts, encodes. */
        String create(JsonObject json, String expires, Layout layout) throws Exception {
            json.put("expires", expires);
            return encode(encrypt(json.toString().getBytes(StandardCharsets.UTF_8)), layout);
        }

        /** Same, for a serialized body the vendor's code would not build. */
        String createRaw(String body) throws Exception {
            return encode(encrypt(body.getBytes(StandardCharsets.UTF_8)), Layout.SINGLE_LINE);
        }

        /** Does the JDK itself refuse this ciphertext's padding? */
        boolean paddingRefused(byte[] ct) throws Exception {
            Cipher cipher = Cipher.getInstance("AES/CBC/PKCS5Padding");
            cipher.init(Cipher.DECRYPT_MODE, secretKeySpec, ivSpec);
            try {
                cipher.doFinal(ct);
                return false;
            } catch (BadPaddingException e) {
                return true;
            }
        }
    }

    static String encode(byte[] ct, Layout layout) {
        String b64;
        switch (layout) {
            case JDK_MIME:
                b64 = Base64.getMimeEncoder().encodeToString(ct);
                break;
            case CODEC_1_4:
                b64 = Base64.getMimeEncoder().encodeToString(ct) + "\r\n";
                break;
            default:
                b64 = Base64.getEncoder().encodeToString(ct);
        }
        return URLEncoder.encode(b64, StandardCharsets.US_ASCII);
    }

    /** The vendor's expiry: a Date formatted with a SimpleDateFormat in a zone. */
    static String at(long unixSeconds, String pattern, String zone) {
        SimpleDateFormat f = new SimpleDateFormat(pattern);
        f.setTimeZone(TimeZone.getTimeZone(zone));
        return f.format(new Date(unixSeconds * 1000L));
    }

    static final String JAVA_NO_ZONE = "yyyy-MM-dd'T'HH:mm:ss";
    static final String WITH_OFFSET = "yyyy-MM-dd'T'HH:mm:ssXXX"; // "Z" in UTC

    static JsonObject person() {
        return new JsonObject()
                .with("first_name", "John")
                .with("last_name", "Smith")
                .with("email", "smith@example.com");
    }

    // ---- output: a hand-written JSON document shaped like sso_legacy.json ----

    static String q(String s) {
        StringBuilder sb = new StringBuilder("\"");
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '"' || c == '\\') {
                sb.append('\\').append(c);
            } else if (c < 0x20) {
                sb.append(String.format("\\u%04x", (int) c));
            } else {
                sb.append(c);
            }
        }
        return sb.append('"').toString();
    }

    static final List<String> accept = new ArrayList<>();
    static final List<String> reject = new ArrayList<>();

    static void accept(String name, String token, String email, String reference) {
        String r = reference == null ? "" : ",\n   \"reference\": " + q(reference);
        accept.add("  {\n   \"name\": " + q(name) + ",\n   \"token\": " + q(token)
                + ",\n   \"email\": " + q(email) + r + "\n  }");
    }

    static void reject(String name, String token) {
        reject.add("  {\n   \"name\": " + q(name) + ",\n   \"token\": " + q(token) + "\n  }");
    }

    public static void main(String[] args) throws Exception {
        TokenGenerator gen = new TokenGenerator(COMPANY_ID, SECURE_KEY);
        long ahead = NOW + 3600, ago = NOW - 3600;
        String aheadZ = at(ahead, WITH_OFFSET, "UTC");

        // ---- accepted ----
        accept("Java shape: expires without a zone (UTC), one hour ahead",
                gen.create(person().with("mobile", "0123456789"),
                        at(ahead, JAVA_NO_ZONE, "UTC"), Layout.SINGLE_LINE),
                "smith@example.com", null);
        accept("expires in +05:30, one hour ahead",
                gen.create(person(), at(ahead, WITH_OFFSET, "GMT+05:30"), Layout.SINGLE_LINE),
                "smith@example.com", null);
        accept("expires with Z, one hour ahead",
                gen.create(person(), aheadZ, Layout.SINGLE_LINE),
                "smith@example.com", null);
        accept("optional mobile and reference",
                gen.create(person().with("mobile", "+44 20 7946 0000")
                                .with("reference", "external_reference"),
                        aheadZ, Layout.SINGLE_LINE),
                "smith@example.com", "external_reference");
        String ref = "crm/customer\u2013" + "0123456789abcdef".repeat(2); // '/' and U+2013 escaped
        accept("non-ASCII names and email, UTF-8; json-simple escapes",
                gen.create(new JsonObject()
                                .with("first_name", "J\u00f6ns")
                                .with("last_name", "\u00d8rsted \u20ac")
                                .with("email", "j\u00f6ns@ex\u00e4mple.se")
                                .with("reference", ref),
                        aheadZ, Layout.SINGLE_LINE),
                "j\u00f6ns@ex\u00e4mple.se", ref);
        String longRef = "crm/customer/" + "0123456789abcdef".repeat(8);
        accept("long payload, JDK MIME base64 (CRLF between 76-character lines)",
                gen.create(person().with("mobile", "0123456789").with("reference", longRef),
                        aheadZ, Layout.JDK_MIME),
                "smith@example.com", longRef);
        accept("long payload, commons-codec 1.4 base64 (CRLF after every line)",
                gen.create(person().with("mobile", "0123456789").with("reference", longRef),
                        at(ahead, JAVA_NO_ZONE, "UTC"), Layout.CODEC_1_4),
                "smith@example.com", longRef);

        // ---- rejected ----
        reject("expired one hour ago (Z)",
                gen.create(person(), at(ago, WITH_OFFSET, "UTC"), Layout.SINGLE_LINE));
        reject("key of another company id",
                new TokenGenerator("41883", SECURE_KEY).create(person(), aheadZ, Layout.SINGLE_LINE));
        JsonObject noEmail = person();
        noEmail.remove("email");
        reject("missing email", gen.create(noEmail, aheadZ, Layout.SINGLE_LINE));
        reject("email is a number",
                gen.create(person().with("email", 12345), aheadZ, Layout.SINGLE_LINE));

        JsonObject full = person().with("mobile", "0123456789").with("reference", "external_reference");
        full.put("expires", aheadZ);
        byte[] ct = gen.encrypt(full.toString().getBytes(StandardCharsets.UTF_8));
        byte[] truncated = Arrays.copyOf(ct, ct.length - 16);
        check(ct.length >= 48 && gen.paddingRefused(truncated), "truncated padding");
        reject("truncated ciphertext (last block dropped)", encode(truncated, Layout.SINGLE_LINE));
        byte[] flipped = ct.clone();
        flipped[flipped.length - 1] ^= 0x01;
        check(gen.paddingRefused(flipped), "flipped padding");
        reject("bad padding (last ciphertext byte flipped)", encode(flipped, Layout.SINGLE_LINE));

        reject("not JSON (plain text)", gen.createRaw("first_name=John&last_name=Smith&email=smith@example.com"));
        reject("JSON array instead of an object",
                gen.createRaw("[\"John\",\"Smith\",\"smith@example.com\",\"" + aheadZ + "\"]"));
        reject("control character in first_name (\\u0007)",
                gen.create(person().with("first_name", "Jo\u0007hn"), aheadZ, Layout.SINGLE_LINE));
        reject("email without '@'",
                gen.create(person().with("email", "smith.example.com"), aheadZ, Layout.SINGLE_LINE));

        PrintStream out = new PrintStream(System.out, true, "UTF-8");
        out.print("{\n \"generator\": " + q("JDK " + System.getProperty("java.specification.version")
                + " javax.crypto port of the vendor's Java TokenGenerator (SsoVectors.java)") + ",\n");
        out.print(" \"company_id\": " + q(COMPANY_ID) + ",\n");
        out.print(" \"secure_key\": " + q(SECURE_KEY) + ",\n");
        out.print(" \"now\": " + NOW + ",\n");
        out.print(" \"accept\": [\n" + String.join(",\n", accept) + "\n ],\n");
        out.print(" \"reject\": [\n" + String.join(",\n", reject) + "\n ]\n}\n");
        out.flush();
    }

    static void check(boolean ok, String what) {
        if (!ok) throw new IllegalStateException(what);
    }
}
