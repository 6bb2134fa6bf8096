// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title memsync vault registry
/// @notice Records who owns a memsync vault and its latest state. A vault appears here
/// only as a commitment (a salted hash its keys derive), owned by an address derived for
/// that vault alone. Everything stored is opaque: an epoch, a counter that only grows,
/// the Merkle root of a vault checkpoint and an optional content address.
/// Every change needs the owner: either the owner sends it, or any account relays it
/// with the owner's EIP-712 signature (so the owner key never needs funds).
/// Ownership views follow ERC-721 (`ownerOf`, `balanceOf`, `Transfer`), so a wallet can
/// show a vault as a token whose id is its commitment.
contract VaultRegistry {
    struct Record {
        address owner; // one slot: owner, epoch and nonce
        uint32 epoch;
        uint64 nonce; // signed changes so far: a signature is good once
        uint64 counter; // the latest checkpoint's counter
        bool live; // set at registration: the first checkpoint then writes used slots
        bytes32 root; // the latest checkpoint's Merkle root
        bytes32 pointer; // where its ciphertext lives, or zero
    }

    string public constant name = "memsync vault";
    string public constant symbol = "MEMSYNC";

    bytes32 private constant DOMAIN_TYPE = keccak256(
        "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
    );
    bytes32 private constant REGISTER_TYPE = keccak256("Register(bytes32 vault,address owner)");
    bytes32 private constant CHECKPOINT_TYPE = keccak256(
        "Checkpoint(bytes32 vault,uint32 epoch,uint64 counter,bytes32 root,bytes32 pointer,uint64 nonce)"
    );
    bytes32 private constant TRANSFER_TYPE = keccak256(
        "Transfer(bytes32 vault,address newOwner,uint64 nonce)"
    );
    // Half the secp256k1 order: a higher s is the same signature in another form.
    // What register puts in the root and pointer slots: writing a used slot costs a
    // quarter of writing a new one, so every checkpoint costs the same.
    bytes32 private constant FILLER = bytes32(uint256(1));
    uint256 private constant HALF_N =
        0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;

    mapping(bytes32 => Record) private records;
    mapping(address => uint256) public balanceOf;

    event Registered(bytes32 indexed vault, address indexed owner);
    event Checkpointed(
        bytes32 indexed vault, uint32 epoch, uint64 counter, bytes32 root, bytes32 pointer
    );
    event OwnershipTransferred(bytes32 indexed vault, address indexed from, address indexed to);
    /// ERC-721's event: the token id is the commitment.
    event Transfer(address indexed from, address indexed to, uint256 indexed tokenId);
    /// Ciphertext of a vault put on chain (the `evm://` remote); readers check its hash.
    event Published(bytes32 indexed vault, bytes32 indexed key, bytes data);

    error AlreadyRegistered();
    error NotRegistered();
    error NotOwner();
    error CounterNotIncreasing(uint64 latest);
    error ZeroOwner();

    function register(bytes32 vault, address owner, uint8 v, bytes32 r, bytes32 s) external {
        if (owner == address(0)) revert ZeroOwner();
        Record storage rec = records[vault];
        if (rec.owner != address(0)) revert AlreadyRegistered();
        // Signed, so that an observer of the pending transaction cannot take the
        // commitment first under another owner.
        if (msg.sender != owner) {
            _check(owner, keccak256(abi.encode(REGISTER_TYPE, vault, owner)), v, r, s);
        }
        rec.owner = owner;
        rec.live = true;
        rec.root = FILLER;
        rec.pointer = FILLER;
        balanceOf[owner] += 1;
        emit Registered(vault, owner);
        emit Transfer(address(0), owner, uint256(vault));
    }

    function checkpoint(
        bytes32 vault,
        uint32 epoch,
        uint64 counter,
        bytes32 root,
        bytes32 pointer,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external {
        Record storage rec = records[vault];
        address owner = rec.owner;
        if (owner == address(0)) revert NotRegistered();
        if (counter <= rec.counter) revert CounterNotIncreasing(rec.counter);
        uint64 nonce = rec.nonce;
        if (msg.sender != owner) {
            bytes32 digest = keccak256(
                abi.encode(CHECKPOINT_TYPE, vault, epoch, counter, root, pointer, nonce)
            );
            _check(owner, digest, v, r, s);
        }
        rec.epoch = epoch;
        rec.nonce = nonce + 1;
        rec.counter = counter;
        rec.root = root;
        rec.pointer = pointer;
        emit Checkpointed(vault, epoch, counter, root, pointer);
    }

    function transferOwnership(bytes32 vault, address newOwner, uint8 v, bytes32 r, bytes32 s)
        external
    {
        if (newOwner == address(0)) revert ZeroOwner();
        Record storage rec = records[vault];
        address owner = rec.owner;
        if (owner == address(0)) revert NotRegistered();
        uint64 nonce = rec.nonce;
        if (msg.sender != owner) {
            _check(owner, keccak256(abi.encode(TRANSFER_TYPE, vault, newOwner, nonce)), v, r, s);
        }
        rec.owner = newOwner;
        rec.nonce = nonce + 1;
        balanceOf[owner] -= 1;
        balanceOf[newOwner] += 1;
        emit OwnershipTransferred(vault, owner, newOwner);
        emit Transfer(owner, newOwner, uint256(vault));
    }

    /// Puts ciphertext on chain as event data; anyone may, so readers trust only what
    /// hashes to the name they asked for.
    function publish(bytes32 vault, bytes32 key, bytes calldata data) external {
        emit Published(vault, key, data);
    }

    function get(bytes32 vault)
        external
        view
        returns (
            address owner,
            uint32 epoch,
            uint64 nonce,
            uint64 counter,
            bytes32 root,
            bytes32 pointer
        )
    {
        Record storage rec = records[vault];
        if (rec.counter == 0) return (rec.owner, 0, rec.nonce, 0, bytes32(0), bytes32(0));
        return (rec.owner, rec.epoch, rec.nonce, rec.counter, rec.root, rec.pointer);
    }

    function ownerOf(uint256 tokenId) external view returns (address) {
        address owner = records[bytes32(tokenId)].owner;
        if (owner == address(0)) revert NotRegistered();
        return owner;
    }

    function supportsInterface(bytes4 id) external pure returns (bool) {
        return id == 0x01ffc9a7; // ERC-165 only: transfers go through transferOwnership
    }

    function domainSeparator() public view returns (bytes32) {
        // Computed each time, so a signature made for one chain never counts on a fork.
        return keccak256(
            abi.encode(
                DOMAIN_TYPE,
                keccak256("memsync vault registry"),
                keccak256("1"),
                block.chainid,
                address(this)
            )
        );
    }

    function _check(address owner, bytes32 structHash, uint8 v, bytes32 r, bytes32 s)
        private
        view
    {
        if (uint256(s) > HALF_N) revert NotOwner();
        bytes32 digest = keccak256(abi.encodePacked("\x19\x01", domainSeparator(), structHash));
        address signer = ecrecover(digest, v, r, s);
        if (signer == address(0) || signer != owner) revert NotOwner();
    }
}
