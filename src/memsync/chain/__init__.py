"""The vault on an EVM chain: a registry that records who owns a vault and its latest
state, the witness a sync checks, and a remote that keeps ciphertext on chain.

`VaultRegistry.sol` is the contract; `VaultRegistry.json` its ABI and bytecode, built by
`scripts/solc/compile.js` with the pinned npm `solc` (a test rebuilds it and compares).
web3.py and the EVM come with the chain extra (`pip install 'memsync[chain]'`); nothing
here imports them until a chain command runs.
"""
