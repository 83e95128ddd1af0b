//! Gramine v1.9's enclave layout, as `sgx_sign.py` lays it out.
