//! placeholder until the ESP module lands
use crate::crypto::{Encr, Integ};
use zeroize::Zeroizing;
/// What IKE hands over when a Child SA is installed (one direction).
pub struct EspParams {
    pub spi: u32,
    pub encr: Encr,
    pub integ: Option<Integ>,
    pub enc_key: Zeroizing<Vec<u8>>,
    pub integ_key: Zeroizing<Vec<u8>>,
    pub esn: bool,
}
