package handlers_test

import (
	"context"
	"fmt"

	"github.com/lexigram/events/handlers"
	"github.com/lexigram/events/platform"
)

// Account is the example's aggregate.
type Account struct {
	platform.AggregateRoot
	Owner   string
	Balance int64
}

type AccountOpened struct{ Owner string }
type Deposited struct{ Amount int64 }

func (a *Account) AggregateType() string { return "account" }

func (a *Account) Apply(event any) {
	switch e := event.(type) {
	case AccountOpened:
		a.Owner = e.Owner
	case Deposited:
		a.Balance += e.Amount
	}
}

type OpenAccount struct{ ID, Owner string }
type Deposit struct {
	ID     string
	Amount int64
}

func (d Deposit) Validate() error {
	if d.Amount <= 0 {
		return fmt.Errorf("amount %d: deposit a positive amount", d.Amount)
	}
	return nil
}

type GetBalance struct{ ID string }

func Example() {
	ctx := context.Background()
	reg := platform.NewRegistry()
	platform.MustRegister[AccountOpened](reg, "account.opened", 1)
	platform.MustRegister[Deposited](reg, "account.deposited", 1)
	platform.MustRegister[OpenAccount](reg, "account.open", 1)
	platform.MustRegister[Deposit](reg, "account.deposit", 1)
	platform.MustRegister[GetBalance](reg, "account.get-balance", 1)

	stub := handlers.NewStub(handlers.StubOptions{Registry: reg})
	defer stub.Close()
	accounts := handlers.StubRepository(stub, func() *Account { return &Account{} })

	// Commands change aggregates through the unit of work; the Transaction
	// middleware saves them when the handler returns nil.
	_ = handlers.HandleCommand(stub.Commands, func(ctx context.Context, c OpenAccount) error {
		a := &Account{}
		a.SetID(c.ID)
		platform.Raise(a, AccountOpened{Owner: c.Owner})
		return handlers.Track(ctx, accounts, a)
	})
	_ = handlers.HandleCommand(stub.Commands, func(ctx context.Context, c Deposit) error {
		a, err := handlers.Load(ctx, accounts, c.ID)
		if err != nil {
			return err
		}
		platform.Raise(a, Deposited{Amount: c.Amount})
		return nil
	})
	_ = handlers.HandleQuery(stub.Queries, func(ctx context.Context, q GetBalance) (int64, error) {
		a, err := accounts.Load(ctx, q.ID)
		return a.Balance, err
	})
	// Event handlers see the events the commands stored.
	_ = handlers.HandleEvent(stub.Events, "receipts", func(ctx context.Context, e Deposited) error {
		fmt.Println("receipt for", e.Amount)
		return nil
	})

	if _, err := stub.Dispatch(ctx, OpenAccount{ID: "acc-1", Owner: "ada"}); err != nil {
		fmt.Println(err)
	}
	res, err := stub.Dispatch(ctx, Deposit{ID: "acc-1", Amount: 30})
	if err != nil {
		fmt.Println(err)
	}
	fmt.Println("version", res.Version, "event", res.Events[0].Type)

	_, err = stub.Dispatch(ctx, Deposit{ID: "acc-1", Amount: -5})
	fmt.Println(platform.CodeOf(err), errorsIs(err, platform.ErrInvalidArgument))

	balance, err := handlers.Ask[int64](ctx, stub.Queries, GetBalance{ID: "acc-1"})
	fmt.Println("balance", balance, err)
	// Output:
	// receipt for 30
	// version 2 event account.deposited
	// LXE-005 true
	// balance 30 <nil>
}
