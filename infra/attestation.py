"""The attestation key (issue 19): the KMS key that signs every promotion attestation.

One asymmetric key, ECC_NIST_P256 for SIGN_VERIFY (ECDSA P-256 with SHA-256: what cosign, Kyverno
and the Sigstore policy-controller verify with a plain public key). Its key policy:
- the account administers it as any key of the account (the root principal, so IAM policies apply);
- `kms:Sign` is DENIED to every principal but the signers: the promoter's roles (the function's,
  the reconciliation's) and the break-glass principals (`promoter promote` and `rollback` attest
  what they write), so an attestation under this key was made by the promoter or by someone the
  stack names; no other grant in the account can change that;
- `kms:GetPublicKey` and `kms:Verify` are open to the account: anyone there may
  check an attestation (`promoter attestation key` prints the public key, which may then travel).
The signers also get `kms:Sign` in their own policies (on this key only). The key's ARN is the
functions' `ATTESTATION_KEY_ARN` and the stack output `AttestationPublicKeyArn`.

Asymmetric KMS keys cannot rotate (KMS rotates symmetric keys only): a new key means a new public
key in every admission policy, so the key is retained when the stack is deleted unless the
stack's removal policy says otherwise (then KMS deletes it after the pending window).
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

SIGN_ACTIONS = ("kms:Sign",)
PUBLIC_KEY_ACTIONS = ("kms:GetPublicKey", "kms:Verify")
# KMS's longest wait before a scheduled deletion: time to notice that attestations still need it.
PENDING_WINDOW = Duration.days(30)


class AttestationKey(Construct):
    """The signing key. `allow_signers` names who may sign (once, with every signer)."""

    def __init__(self, scope: Construct, construct_id: str, *, removal_policy: RemovalPolicy) -> None:
        super().__init__(scope, construct_id)
        self.key = kms.Key(
            self,
            "Key",
            description="ECR image promoter: signs promotion attestations (in-toto VSA, DSSE)",
            key_spec=kms.KeySpec.ECC_NIST_P256,
            key_usage=kms.KeyUsage.SIGN_VERIFY,
            removal_policy=removal_policy,
            pending_window=PENDING_WINDOW,
        )
        account = Stack.of(self).account
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AccountMayReadThePublicKeyAndVerify",
                principals=[iam.AccountRootPrincipal()],
                actions=list(PUBLIC_KEY_ACTIONS),
                resources=["*"],
                conditions={"StringEquals": {"kms:CallerAccount": account}},
            )
        )
        self._signers_allowed = False

    @property
    def key_arn(self) -> str:
        return self.key.key_arn

    def allow_signers(self, roles: Sequence[iam.IRole], principal_arns: Sequence[str] = ()) -> None:
        """Only `roles` and `principal_arns` (exact ARNs) may sign; each role gets kms:Sign on
        this key in its own policy. Raises ValueError when called twice (the deny would not hold
        the second call's signers) or with no signer."""
        if self._signers_allowed:
            raise ValueError("allow_signers names every signer at once")
        if not roles:
            raise ValueError("the attestation key needs the promoter's role as a signer")
        self._signers_allowed = True
        signers = [role.role_arn for role in roles] + list(principal_arns)
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="OnlyThePromoterSigns",
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                actions=list(SIGN_ACTIONS),
                resources=["*"],
                conditions={"ArnNotEquals": {"aws:PrincipalArn": signers}},
            )
        )
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="ThePromoterSigns",
                principals=[iam.ArnPrincipal(arn) for arn in signers],
                actions=list(SIGN_ACTIONS),
                resources=["*"],
            )
        )
        for role in roles:
            role.add_to_principal_policy(
                iam.PolicyStatement(actions=list(SIGN_ACTIONS), resources=[self.key.key_arn])
            )
