//! SMS text encoding: GSM 03.38 or UCS-2, split into concatenated parts.
