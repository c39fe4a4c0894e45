//! IANA numbers for IKEv2 (RFC 7296 §3 and the IANA "IKEv2 Parameters" registry).
//!
//! Newtypes over the raw numbers so that values we do not know still round-trip.

macro_rules! number {
    ($(#[$m:meta])* $name:ident : $repr:ty { $($(#[$vm:meta])* $c:ident = $v:expr),* $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub $repr);
        #[allow(missing_docs)]
        impl $name {
            $($(#[$vm])* pub const $c: $name = $name($v);)*
            /// The registry name, if known.
            pub fn name(self) -> Option<&'static str> {
                match self.0 { $($v => Some(stringify!($c)),)* _ => None }
            }
        }
        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                match self.name() { Some(n) => f.write_str(n), None => write!(f, "{}({})", stringify!($name), self.0) }
            }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { std::fmt::Debug::fmt(self, f) }
        }
    };
}

/// Payload type numbers (§3.2, RFC 7383).
pub mod payload_type {
    pub const NONE: u8 = 0;
    pub const SA: u8 = 33;
    pub const KE: u8 = 34;
    pub const IDI: u8 = 35;
    pub const IDR: u8 = 36;
    pub const CERT: u8 = 37;
    pub const CERTREQ: u8 = 38;
    pub const AUTH: u8 = 39;
    pub const NONCE: u8 = 40;
    pub const NOTIFY: u8 = 41;
    pub const DELETE: u8 = 42;
    pub const VENDOR_ID: u8 = 43;
    pub const TSI: u8 = 44;
    pub const TSR: u8 = 45;
    pub const SK: u8 = 46;
    pub const CP: u8 = 47;
    pub const EAP: u8 = 48;
    pub const SKF: u8 = 53;
}

number!(
    /// Exchange types (§3.1).
    ExchangeType: u8 {
    IKE_SA_INIT = 34,
    IKE_AUTH = 35,
    CREATE_CHILD_SA = 36,
    INFORMATIONAL = 37,
    /// RFC 9242: between IKE_SA_INIT and IKE_AUTH (here: one per additional key exchange, RFC 9370 §2.2.1).
    IKE_INTERMEDIATE = 43,
    /// RFC 9370 §2.2.4: the additional key exchanges of a CREATE_CHILD_SA.
    IKE_FOLLOWUP_KE = 44,
});

number!(
    /// Security protocol identifiers (§3.3.1).
    ProtocolId: u8 {
    IKE = 1,
    AH = 2,
    ESP = 3,
});

number!(
    /// Transform types (§3.3.2).
    TransformType: u8 {
    ENCR = 1,
    PRF = 2,
    INTEG = 3,
    /// Diffie-Hellman group; "Key Exchange Method" in RFC 9370.
    DH = 4,
    ESN = 5,
    /// Additional key exchanges 1-7 (RFC 9370 §2.2.1).
    ADDKE1 = 6,
    ADDKE2 = 7,
    ADDKE3 = 8,
    ADDKE4 = 9,
    ADDKE5 = 10,
    ADDKE6 = 11,
    ADDKE7 = 12,
});

impl TransformType {
    /// The transform type of additional key exchange `n` (1-7, RFC 9370 §2.2.1).
    pub fn addke(n: usize) -> TransformType {
        TransformType(5 + n as u8)
    }
}

/// Transform IDs for ENCR (§3.3.2, RFC 5282, RFC 7634).
pub mod encr {
    pub const AES_CBC: u16 = 12;
    pub const AES_GCM_16: u16 = 20;
    pub const CHACHA20_POLY1305: u16 = 28;
}

/// Transform IDs for PRF (RFC 4868).
pub mod prf {
    pub const HMAC_SHA2_256: u16 = 5;
    pub const HMAC_SHA2_384: u16 = 6;
    pub const HMAC_SHA2_512: u16 = 7;
}

/// Transform IDs for INTEG (RFC 4868).
pub mod integ {
    pub const NONE: u16 = 0;
    pub const HMAC_SHA2_256_128: u16 = 12;
    pub const HMAC_SHA2_384_192: u16 = 13;
    pub const HMAC_SHA2_512_256: u16 = 14;
}

/// Key exchange groups (RFC 3526, RFC 5903, RFC 8031).
pub mod dh {
    pub const NONE: u16 = 0;
    pub const MODP_2048: u16 = 14;
    pub const MODP_3072: u16 = 15;
    pub const MODP_4096: u16 = 16;
    pub const ECP_256: u16 = 19;
    pub const ECP_384: u16 = 20;
    pub const ECP_521: u16 = 21;
    pub const CURVE25519: u16 = 31;
    /// ML-KEM-512/768/1024 (FIPS 203; draft-ietf-ipsecme-ikev2-mlkem §7, IANA "Transform Type 4").
    pub const MLKEM_512: u16 = 35;
    pub const MLKEM_768: u16 = 36;
    pub const MLKEM_1024: u16 = 37;
}

/// ESN transform IDs.
pub mod esn {
    pub const NO: u16 = 0;
    pub const YES: u16 = 1;
}

/// Transform attribute type for Key Length (§3.3.5).
pub const ATTR_KEY_LENGTH: u16 = 14;

number!(
    /// Identification types (§3.5).
    IdType: u8 {
    ID_IPV4_ADDR = 1,
    ID_FQDN = 2,
    ID_RFC822_ADDR = 3,
    ID_IPV6_ADDR = 5,
    ID_DER_ASN1_DN = 9,
    ID_DER_ASN1_GN = 10,
    ID_KEY_ID = 11,
});

number!(
    /// Authentication methods (§3.8, RFC 7427).
    AuthMethod: u8 {
    RSA_SIG = 1,
    SHARED_KEY_MIC = 2,
    DSS_SIG = 3,
    ECDSA_256 = 9,
    ECDSA_384 = 10,
    ECDSA_521 = 11,
    DIGITAL_SIGNATURE = 14,
});

number!(
    /// Notify message types (§3.10.1, RFC 7383, RFC 4555, RFC 7427, RFC 5998).
    NotifyType: u16 {
    UNSUPPORTED_CRITICAL_PAYLOAD = 1,
    INVALID_IKE_SPI = 4,
    INVALID_MAJOR_VERSION = 5,
    INVALID_SYNTAX = 7,
    INVALID_MESSAGE_ID = 9,
    INVALID_SPI = 11,
    NO_PROPOSAL_CHOSEN = 14,
    INVALID_KE_PAYLOAD = 17,
    AUTHENTICATION_FAILED = 24,
    SINGLE_PAIR_REQUIRED = 34,
    NO_ADDITIONAL_SAS = 35,
    INTERNAL_ADDRESS_FAILURE = 36,
    FAILED_CP_REQUIRED = 37,
    TS_UNACCEPTABLE = 38,
    INVALID_SELECTORS = 39,
    TEMPORARY_FAILURE = 43,
    CHILD_SA_NOT_FOUND = 44,
    /// RFC 9370 §2.2.4: the responder lost the state of an IKE_FOLLOWUP_KE exchange.
    STATE_NOT_FOUND = 47,
    INITIAL_CONTACT = 16384,
    SET_WINDOW_SIZE = 16385,
    ADDITIONAL_TS_POSSIBLE = 16386,
    IPCOMP_SUPPORTED = 16387,
    NAT_DETECTION_SOURCE_IP = 16388,
    NAT_DETECTION_DESTINATION_IP = 16389,
    COOKIE = 16390,
    USE_TRANSPORT_MODE = 16391,
    HTTP_CERT_LOOKUP_SUPPORTED = 16392,
    REKEY_SA = 16393,
    ESP_TFC_PADDING_NOT_SUPPORTED = 16394,
    NON_FIRST_FRAGMENTS_ALSO = 16395,
    MOBIKE_SUPPORTED = 16396,
    ADDITIONAL_IP4_ADDRESS = 16397,
    ADDITIONAL_IP6_ADDRESS = 16398,
    NO_ADDITIONAL_ADDRESSES = 16399,
    UPDATE_SA_ADDRESSES = 16400,
    COOKIE2 = 16401,
    NO_NATS_ALLOWED = 16402,
    AUTH_LIFETIME = 16403,
    REDIRECT_SUPPORTED = 16406,
    REDIRECT = 16407,
    REDIRECTED_FROM = 16408,
    EAP_ONLY_AUTHENTICATION = 16417,
    IKEV2_FRAGMENTATION_SUPPORTED = 16430,
    SIGNATURE_HASH_ALGORITHMS = 16431,
    /// RFC 8784 §3 (postquantum preshared keys).
    USE_PPK = 16435,
    PPK_IDENTITY = 16436,
    NO_PPK_AUTH = 16437,
    /// RFC 9242 §3.
    INTERMEDIATE_EXCHANGE_SUPPORTED = 16438,
    /// RFC 9370 §2.2.4: links a CREATE_CHILD_SA to its IKE_FOLLOWUP_KE exchanges.
    ADDITIONAL_KEY_EXCHANGE = 16441,
});

impl NotifyType {
    /// Error types are below 16384 (§3.10.1).
    pub fn is_error(self) -> bool {
        self.0 < 16384
    }
}

number!(
    /// Configuration payload types (§3.15).
    CfgType: u8 {
    CFG_REQUEST = 1,
    CFG_REPLY = 2,
    CFG_SET = 3,
    CFG_ACK = 4,
});

/// Configuration attribute types (§3.15.1).
pub mod cfg_attr {
    pub const INTERNAL_IP4_ADDRESS: u16 = 1;
    pub const INTERNAL_IP4_NETMASK: u16 = 2;
    pub const INTERNAL_IP4_DNS: u16 = 3;
    pub const INTERNAL_IP4_NBNS: u16 = 4;
    pub const INTERNAL_IP4_DHCP: u16 = 6;
    pub const APPLICATION_VERSION: u16 = 7;
    pub const INTERNAL_IP6_ADDRESS: u16 = 8;
    pub const INTERNAL_IP6_DNS: u16 = 10;
    pub const INTERNAL_IP4_SUBNET: u16 = 13;
    pub const SUPPORTED_ATTRIBUTES: u16 = 14;
    pub const INTERNAL_IP6_SUBNET: u16 = 15;
    /// RFC 8598.
    pub const INTERNAL_DNS_DOMAIN: u16 = 25;
}

/// Certificate encodings (§3.6).
pub mod cert_encoding {
    pub const X509_SIGNATURE: u8 = 4;
}

/// Traffic selector types (§3.13.1).
pub mod ts_type {
    pub const IPV4_ADDR_RANGE: u8 = 7;
    pub const IPV6_ADDR_RANGE: u8 = 8;
}
