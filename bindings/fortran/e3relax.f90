! e3relax Fortran module: relaxed crystal structures from E3Relax.
!
! Compile this file with your own compiler (module files are compiler
! specific) and link libe3relax. Conventions: lattice(3,3) with
! lattice(:,i) = lattice vector i (the same memory as C's lattice[3][3]
! with row i = vector i, and how QE's at*alat and CP2K's hmat hold it);
! positions(3,natoms) Cartesian; atomic numbers. Lengths in Angstrom, or in
! Bohr with unit='bohr' at load time (CODATA 2018, no constants needed).
!
!   type(e3relax_model) :: model
!   call e3relax_load(model, 'models/default', unit='bohr')
!   call e3relax_predict(model, natoms, numbers, positions, lattice, new_positions, new_lattice)
!   call e3relax_free(model)
!
! Every routine takes an optional ierr as last argument: present, it gets
! the status (0 = success) and e3relax_last_error(message) tells why; absent,
! an error prints the message and stops with `error stop`.
module e3relax
    use, intrinsic :: iso_c_binding
    implicit none
    private

    public :: e3relax_model, e3relax_load, e3relax_free, e3relax_predict, e3relax_predict_batch
    public :: e3relax_last_error, e3relax_version, e3relax_set_num_threads
    public :: E3RELAX_SUCCESS, E3RELAX_INVALID_ARGUMENT, E3RELAX_INVALID_STRUCTURE, E3RELAX_MODEL_ERROR
    public :: E3RELAX_IO_ERROR, E3RELAX_FORMAT_ERROR, E3RELAX_DEVICE_ERROR, E3RELAX_TORCH_ERROR, E3RELAX_INTERNAL_ERROR

    integer, parameter :: E3RELAX_SUCCESS = 0
    integer, parameter :: E3RELAX_INVALID_ARGUMENT = 1
    integer, parameter :: E3RELAX_INVALID_STRUCTURE = 2
    integer, parameter :: E3RELAX_MODEL_ERROR = 3
    integer, parameter :: E3RELAX_IO_ERROR = 4
    integer, parameter :: E3RELAX_FORMAT_ERROR = 5
    integer, parameter :: E3RELAX_DEVICE_ERROR = 6
    integer, parameter :: E3RELAX_TORCH_ERROR = 7
    integer, parameter :: E3RELAX_INTERNAL_ERROR = 8
    integer(c_int32_t), parameter :: ABI_VERSION = 1

    !> A loaded model (holds the C handle).
    type :: e3relax_model
        type(c_ptr) :: handle = c_null_ptr
    end type e3relax_model

    interface
        function c_load(path, options, model) bind(C, name="e3relax_load") result(status)
            import :: c_char, c_ptr, c_int32_t
            character(kind=c_char), dimension(*), intent(in) :: path, options
            type(c_ptr), intent(out) :: model
            integer(c_int32_t) :: status
        end function c_load

        function c_free(model) bind(C, name="e3relax_free") result(status)
            import :: c_ptr, c_int32_t
            type(c_ptr), value :: model
            integer(c_int32_t) :: status
        end function c_free

        function c_predict(model, natoms, numbers, positions, lattice, out_positions, out_lattice) &
                bind(C, name="e3relax_predict") result(status)
            import :: c_ptr, c_int32_t, c_double
            type(c_ptr), value :: model
            integer(c_int32_t), value :: natoms
            integer(c_int32_t), dimension(*), intent(in) :: numbers
            real(c_double), dimension(*), intent(in) :: positions, lattice
            real(c_double), dimension(*), intent(out) :: out_positions, out_lattice
            integer(c_int32_t) :: status
        end function c_predict

        function c_predict_batch(model, nstructures, natoms, numbers, positions, lattices, out_positions, out_lattices) &
                bind(C, name="e3relax_predict_batch") result(status)
            import :: c_ptr, c_int32_t, c_double
            type(c_ptr), value :: model
            integer(c_int32_t), value :: nstructures
            integer(c_int32_t), dimension(*), intent(in) :: natoms, numbers
            real(c_double), dimension(*), intent(in) :: positions, lattices
            real(c_double), dimension(*), intent(out) :: out_positions, out_lattices
            integer(c_int32_t) :: status
        end function c_predict_batch

        function c_last_error() bind(C, name="e3relax_last_error") result(message)
            import :: c_ptr
            type(c_ptr) :: message
        end function c_last_error

        function c_version() bind(C, name="e3relax_version") result(version)
            import :: c_ptr
            type(c_ptr) :: version
        end function c_version

        function c_abi_version() bind(C, name="e3relax_abi_version") result(version)
            import :: c_int32_t
            integer(c_int32_t) :: version
        end function c_abi_version

        function c_set_num_threads(threads, interop) bind(C, name="e3relax_set_num_threads") result(status)
            import :: c_int32_t
            integer(c_int32_t), value :: threads, interop
            integer(c_int32_t) :: status
        end function c_set_num_threads

        function c_strlen(s) bind(C, name="strlen") result(n)
            import :: c_ptr, c_size_t
            type(c_ptr), value :: s
            integer(c_size_t) :: n
        end function c_strlen
    end interface

contains

    !> Copies a C string into a Fortran string (blank padded, truncated).
    subroutine copy_c_string(cstr, out)
        type(c_ptr), intent(in) :: cstr
        character(len=*), intent(out) :: out
        character(kind=c_char), pointer :: chars(:)
        integer :: i, n
        out = ' '
        if (.not. c_associated(cstr)) return
        n = int(c_strlen(cstr))
        call c_f_pointer(cstr, chars, [n])
        do i = 1, min(n, len(out))
            out(i:i) = chars(i)
        end do
    end subroutine copy_c_string

    !> The message of the last failed call on this thread.
    subroutine e3relax_last_error(message)
        character(len=*), intent(out) :: message
        call copy_c_string(c_last_error(), message)
    end subroutine e3relax_last_error

    !> The library version, e.g. '0.1.0'.
    subroutine e3relax_version(version)
        character(len=*), intent(out) :: version
        call copy_c_string(c_version(), version)
    end subroutine e3relax_version

    !> Status handling shared by all routines: hand it back through ierr,
    !> or stop with the library's message.
    subroutine finish(status, ierr)
        integer(c_int32_t), intent(in) :: status
        integer, optional, intent(out) :: ierr
        character(len=1024) :: message
        if (present(ierr)) then
            ierr = int(status)
        else if (status /= E3RELAX_SUCCESS) then
            call e3relax_last_error(message)
            write (0, '(a)') 'e3relax: '//trim(message)
            error stop 1
        end if
    end subroutine finish

    !> Loads a model directory. unit: 'angstrom' (default) or 'bohr';
    !> device: 'cpu' (default), 'cuda', 'cuda:K' or 'auto'; fixed_cell:
    !> keep the lattice and move only atoms.
    subroutine e3relax_load(model, path, unit, device, fixed_cell, ierr)
        type(e3relax_model), intent(out) :: model
        character(len=*), intent(in) :: path
        character(len=*), optional, intent(in) :: unit, device
        logical, optional, intent(in) :: fixed_cell
        integer, optional, intent(out) :: ierr
        character(len=:), allocatable :: options
        integer(c_int32_t) :: status
        options = '{"length_unit": "'
        if (present(unit)) then
            options = options//trim(unit)
        else
            options = options//'angstrom'
        end if
        options = options//'", "device": "'
        if (present(device)) then
            options = options//trim(device)
        else
            options = options//'cpu'
        end if
        options = options//'", "fixed_cell": '
        if (present(fixed_cell)) then
            if (fixed_cell) then
                options = options//'true}'
            else
                options = options//'false}'
            end if
        else
            options = options//'false}'
        end if
        status = c_load(trim(path)//c_null_char, options//c_null_char, model%handle)
        if (status == E3RELAX_SUCCESS .and. c_abi_version() /= ABI_VERSION) then
            status = c_free(model%handle)
            model%handle = c_null_ptr
            write (0, '(a)') 'e3relax: this module was written for another ABI version of libe3relax'
            status = E3RELAX_INVALID_ARGUMENT
        end if
        call finish(status, ierr)
    end subroutine e3relax_load

    !> Frees the model (a no-op on a model that was never loaded).
    subroutine e3relax_free(model, ierr)
        type(e3relax_model), intent(inout) :: model
        integer, optional, intent(out) :: ierr
        integer(c_int32_t) :: status
        status = c_free(model%handle)
        model%handle = c_null_ptr
        call finish(status, ierr)
    end subroutine e3relax_free

    !> Predicts the relaxed positions and lattice of one crystal.
    subroutine e3relax_predict(model, natoms, numbers, positions, lattice, new_positions, new_lattice, ierr)
        type(e3relax_model), intent(in) :: model
        integer, intent(in) :: natoms
        integer, intent(in) :: numbers(natoms)
        real(c_double), intent(in) :: positions(3, natoms), lattice(3, 3)
        real(c_double), intent(out) :: new_positions(3, natoms), new_lattice(3, 3)
        integer, optional, intent(out) :: ierr
        integer(c_int32_t) :: status
        integer(c_int32_t) :: z(natoms)
        z = int(numbers, c_int32_t)
        status = c_predict(model%handle, int(natoms, c_int32_t), z, positions, lattice, new_positions, new_lattice)
        call finish(status, ierr)
    end subroutine e3relax_predict

    !> Predicts many crystals of different sizes: natoms(nstructures) atom
    !> counts, numbers and positions concatenated, lattices(3,3,nstructures).
    subroutine e3relax_predict_batch(model, nstructures, natoms, numbers, positions, lattices, &
            new_positions, new_lattices, ierr)
        type(e3relax_model), intent(in) :: model
        integer, intent(in) :: nstructures
        integer, intent(in) :: natoms(nstructures)
        integer, intent(in) :: numbers(:)
        real(c_double), intent(in) :: positions(:, :), lattices(3, 3, nstructures)
        real(c_double), intent(out) :: new_positions(:, :), new_lattices(3, 3, nstructures)
        integer, optional, intent(out) :: ierr
        integer(c_int32_t) :: status
        integer(c_int32_t) :: counts(nstructures), z(size(numbers))
        real(c_double), allocatable :: flat_in(:), flat_out(:)
        if (sum(natoms) /= size(numbers) .or. size(positions, 2) /= size(numbers) .or. &
                size(new_positions, 2) /= size(numbers) .or. size(positions, 1) /= 3) then
            write (0, '(a)') 'e3relax: e3relax_predict_batch: sum(natoms), numbers and positions(3,:) disagree'
            call finish(int(E3RELAX_INVALID_ARGUMENT, c_int32_t), ierr)
            return
        end if
        counts = int(natoms, c_int32_t)
        z = int(numbers, c_int32_t)
        flat_in = reshape(positions, [3 * size(numbers)])
        allocate (flat_out(3 * size(numbers)))
        status = c_predict_batch(model%handle, int(nstructures, c_int32_t), counts, z, flat_in, lattices, &
            flat_out, new_lattices)
        if (status == E3RELAX_SUCCESS) new_positions = reshape(flat_out, [3, size(numbers)])
        call finish(status, ierr)
    end subroutine e3relax_predict_batch

    !> Sets libtorch's thread counts (interop > 0 only once per process).
    subroutine e3relax_set_num_threads(threads, interop, ierr)
        integer, intent(in) :: threads
        integer, optional, intent(in) :: interop
        integer, optional, intent(out) :: ierr
        integer(c_int32_t) :: inter
        inter = 0
        if (present(interop)) inter = int(interop, c_int32_t)
        call finish(c_set_num_threads(int(threads, c_int32_t), inter), ierr)
    end subroutine e3relax_set_num_threads

end module e3relax
