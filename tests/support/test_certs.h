#pragma once
// Certificates made per test run with OpenSSL: a CA, and leaf certificates it
// signs (servers and clients), as PEM text; and trusting one in the prober.

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

namespace vantage::testing {

struct TestKey {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  TestKey() = default;
  TestKey(const TestKey&) = delete;
  TestKey& operator=(const TestKey&) = delete;
  ~TestKey() { EVP_PKEY_free(key); }
  std::string pem() const {
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
    char* data;
    long n = BIO_get_mem_data(bio, &data);
    std::string out(data, n);
    BIO_free(bio);
    return out;
  }
};

// When a certificate is valid, in seconds from now (negative: in the past).
struct Validity {
  long from_seconds = -3600;
  long to_seconds = 86400;
};

// A certificate for `subject` (common name `name`, subjectAltName `san`
// unless empty) signed by `issuer` named `issuer_name`, valid for `valid`
// (by default an hour ago to a day from now).
inline std::string make_certificate(const std::string& name, const TestKey& subject, const TestKey& issuer,
                                    const std::string& issuer_name, bool ca, const std::string& san = "",
                                    Validity valid = {}) {
  X509* cert = X509_new();
  X509_set_version(cert, 2);
  static long serial = 1000;
  ASN1_INTEGER_set(X509_get_serialNumber(cert), ++serial);
  X509_gmtime_adj(X509_getm_notBefore(cert), valid.from_seconds);
  X509_gmtime_adj(X509_getm_notAfter(cert), valid.to_seconds);
  X509_set_pubkey(cert, subject.key);
  auto set_cn = [](X509_NAME* n, const std::string& cn) {
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  };
  set_cn(X509_get_subject_name(cert), name);
  set_cn(X509_get_issuer_name(cert), issuer_name);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
  auto add = [&](int nid, const std::string& value) {
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
    X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
  };
  if (ca) {
    add(NID_basic_constraints, "critical,CA:TRUE");
    add(NID_key_usage, "critical,keyCertSign,cRLSign");
  } else if (!san.empty()) {
    add(NID_subject_alt_name, san);
  }
  X509_sign(cert, issuer.key, EVP_sha256());
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, cert);
  char* data;
  long n = BIO_get_mem_data(bio, &data);
  std::string out(data, n);
  BIO_free(bio);
  X509_free(cert);
  return out;
}

// A CA and what it signs.
struct TestCa {
  explicit TestCa(std::string name) : name(std::move(name)) {}
  std::string name;
  TestKey key;
  std::string pem = make_certificate(name, key, key, name, /*ca=*/true);

  struct Leaf {
    std::unique_ptr<TestKey> key = std::make_unique<TestKey>();
    std::string cert;
    std::string key_pem() const { return key->pem(); }
  };
  Leaf issue(const std::string& common_name, const std::string& san = "", Validity valid = {}) const {
    Leaf leaf;
    leaf.cert = make_certificate(common_name, *leaf.key, key, name, /*ca=*/false, san, valid);
    return leaf;
  }
};

// Makes OpenSSL's default verify paths trust `pem`: SSL_CERT_FILE names a
// temp file holding it (named with the pid), removed when this ends. The
// prober reads the default paths once, when it makes its TLS context on its
// first TLS attempt (probe/tls_facts.h): so this must come before the
// process's first TLS attempt, and one per process is all that takes effect.
class TrustedCertificateFile {
 public:
  explicit TrustedCertificateFile(const std::string& pem)
      : file_(std::filesystem::temp_directory_path() / ("vantage-trusted-" + std::to_string(getpid()) + ".pem")) {
    std::ofstream(file_) << pem;
    setenv("SSL_CERT_FILE", file_.c_str(), 1);
  }
  TrustedCertificateFile(const TrustedCertificateFile&) = delete;
  TrustedCertificateFile& operator=(const TrustedCertificateFile&) = delete;
  ~TrustedCertificateFile() { std::filesystem::remove(file_); }

 private:
  std::filesystem::path file_;
};

// The process's one CA trusted by the prober (through TrustedCertificateFile,
// so the first call must come before the first TLS attempt), made on that
// first call, named `name`; later calls return the same CA whatever their
// `name`. Its file is removed at exit.
inline const TestCa& trusted_test_ca(const std::string& name) {
  struct Trusted {
    explicit Trusted(const std::string& name) : ca(name), file(ca.pem) {}
    TestCa ca;
    TrustedCertificateFile file;
  };
  static const Trusted trusted(name);
  return trusted.ca;
}

}  // namespace vantage::testing
